import Glibc
import CReactor
@testable import Reactor

/// Records what a connection tells its handler; can pause reading after
/// each read, and close or shut down on cue.
final class SeamHandler: ConnectionHandler {
    var received: [UInt8] = []
    var reads = 0
    var connected = 0
    var drained = 0
    var closed = false
    var pauseAfterRead = false
    func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {
        received += bytes.bytes
        reads += 1
        if pauseAfterRead { c.pauseReading() }
    }
    func connectionConnected(_ c: TCPConnection) { connected += 1 }
    func connectionDrained(_ c: TCPConnection) { drained += 1 }
    func connectionClosed(_ c: TCPConnection, error: SystemError?) { closed = true }
}

/// The seam between `TCPConnection` and a transport with state of its own
/// (what TLS needs), on an embedded loop with `MemoryTransport` playing
/// such a transport: no socket, no OpenSSL, no real time.
extension ReactorSuite {
@Suite struct TransportSeamTests {
    func adopt(_ t: MemoryTransport, on e: EmbeddedEventLoop, _ h: SeamHandler) throws -> TCPConnection {
        let c = try TCPConnection.adopt(transport: t, on: e.loop)
        c.handler = h
        e.watch(t)
        return c
    }

    /// A connection over a transport that holds its output until the
    /// socket (`sendBufferSize` bytes at a time) takes it.
    func holding(sendBufferSize: Int) throws -> (EmbeddedEventLoop, MemoryTransport, SeamHandler, TCPConnection) {
        let e = try EmbeddedEventLoop()
        let t = MemoryTransport(sendBufferSize: sendBufferSize)
        t.holdsOutput = true
        let h = SeamHandler()
        return (e, t, h, try adopt(t, on: e, h))
    }

    /// The peer reads until nothing more comes: what the transport held
    /// leaves a send buffer's worth per turn.
    func readAll(_ t: MemoryTransport, _ e: EmbeddedEventLoop) -> [UInt8] {
        var got: [UInt8] = []
        repeat {
            got += t.peerRead()
            e.run()
        } while t.hasPendingOutput || t.pendingOutbound > 0
        return got
    }

    @Test func bytesQueuedDuringTheHandshakeLeaveOnlyOnceItCompletes() throws {
        let e = try EmbeddedEventLoop()
        let t = MemoryTransport(sendBufferSize: 0, handshake: [.wantWrite, .done])
        let h = SeamHandler()
        let c = try adopt(t, on: e, h)
        #expect(!c.isEstablished)
        #expect(c.enqueue(copying: Array("early".utf8)), "queued while handshaking")
        e.run()
        // Wants to read: the peer has said nothing, so no step is taken.
        #expect(t.handshakeCalls == 0 && h.connected == 0)
        t.peerWrite([1])
        e.run()
        // Read-ready: one step, which now wants to write, but the socket
        // is full (send buffer 0): it waits.
        #expect(t.handshakeCalls == 1)
        #expect(t.pendingOutbound == 0, "nothing leaves before the handshake completes")
        t.sendBufferSize = nil
        e.run()
        #expect(t.handshakeCalls == 2, "write-ready: the next step, which completes it")
        #expect(c.isEstablished && h.connected == 1)
        #expect(t.peerRead() == Array("early".utf8))
        // The byte the peer sent during the handshake was the handshake's.
        #expect(h.received.isEmpty)
    }

    @Test func aGracefulCloseDuringTheHandshakeClosesAtOnce() throws {
        let e = try EmbeddedEventLoop()
        let t = MemoryTransport(handshake: [.wantRead, .done])
        let h = SeamHandler()
        let c = try adopt(t, on: e, h)
        c.enqueue(copying: Array("never said".utf8))
        c.close(afterFlush: true)
        e.run()
        #expect(h.closed && t.isClosed)
        #expect(t.peerRead().isEmpty)
    }

    @Test func aFailedHandshakeClosesWithItsReason() throws {
        let e = try EmbeddedEventLoop()
        let failure = SystemError("tls handshake", code: EPROTO, detail: "wrong version number")
        let t = MemoryTransport(handshake: [.failed(failure)])
        final class Closing: ConnectionHandler {
            var error: SystemError?
            func connectionRead(_ c: TCPConnection, _ bytes: SlabSlice) {}
            func connectionClosed(_ c: TCPConnection, error: SystemError?) { self.error = error }
        }
        let h = Closing()
        let c = try TCPConnection.adopt(transport: t, on: e.loop)
        c.handler = h
        e.watch(t)
        t.peerWrite(Array("GET / HTTP/1.1\r\n".utf8))
        e.run()
        #expect(h.error == failure)
        #expect(t.isClosed)
    }

    /// Input the transport took from the kernel in one go and returns a
    /// chunk at a time: epoll never announces the rest, so the connection
    /// must go on reading by itself.
    @Test func bufferedInputIsReadWithoutAnotherReadinessEvent() throws {
        let e = try EmbeddedEventLoop()
        let t = MemoryTransport()
        t.readChunk = 1000
        let h = SeamHandler()
        _ = try adopt(t, on: e, h)
        let message = (0..<5000).map { UInt8(truncatingIfNeeded: $0) }
        t.peerWrite(message)
        e.run()
        #expect(h.received == message)
        #expect(h.reads == 5)
        #expect(!t.hasBufferedInput)
    }

    @Test func bufferedInputWaitsWhileReadingIsPausedAndComesOnResume() throws {
        let e = try EmbeddedEventLoop()
        let t = MemoryTransport()
        t.readChunk = 1000
        let h = SeamHandler()
        h.pauseAfterRead = true
        let c = try adopt(t, on: e, h)
        t.peerWrite(Array(repeating: 7, count: 3000))
        e.run()
        #expect(h.reads == 1, "paused after the first chunk")
        #expect(t.hasBufferedInput)
        e.run()
        #expect(h.reads == 1, "no readiness event comes for buffered input")
        h.pauseAfterRead = false
        c.resumeReading()
        e.run()
        #expect(h.reads == 3 && h.received.count == 3000)
    }

    /// One readiness event reads at most `maxRead` bytes of buffered
    /// input; the rest is read after the other connections' events
    /// (fairness), without another readiness event.
    @Test func bufferedInputIsReadAtMostMaxReadPerTurn() throws {
        let e = try EmbeddedEventLoop()
        let t = MemoryTransport()
        t.readChunk = 16 * 1024
        let h = SeamHandler()
        let c = try adopt(t, on: e, h)
        let total = 3 * TCPConnection.maxRead
        t.peerWrite(Array(repeating: 1, count: total))
        c.handleEvents(t.readiness)
        #expect(h.received.count == TCPConnection.maxRead)
        #expect(t.readiness == 0 || t.readiness == CREACTOR_EPOLLOUT, "the rest is buffered: no readiness")
        e.run()
        #expect(h.received.count == total)
    }

    /// Output the transport holds (encrypted records the socket refused):
    /// the queue is not drained, nor the FIN sent, until it has left.
    @Test func pendingOutputHoldsBackDrainedAndTheFIN() throws {
        let (e, t, h, c) = try holding(sendBufferSize: 4)
        c.notifyWhenDrained()
        e.run()
        let drainedBefore = h.drained
        c.enqueue(copying: Array("0123456789".utf8))
        c.notifyWhenDrained()
        c.shutdownWrite()
        e.run()
        #expect(t.pendingOutbound == 4)
        #expect(t.hasPendingOutput && !t.writeShutdown)
        #expect(h.drained == drainedBefore, "not drained while the transport holds bytes")
        #expect(c.detach() == nil, "a connection with pending output cannot move")
        #expect(readAll(t, e) == Array("0123456789".utf8) + [MemoryTransport.closeNotify])
        #expect(t.writeShutdown, "FIN after the close_notify")
        #expect(h.drained == drainedBefore + 1)
    }

    /// Asking for a drain notification while the queue is empty but the
    /// transport holds output (a TLS record cut by a slow-consumer lag):
    /// it comes only once that output has left.
    @Test func drainedIsNotAnnouncedWhileTheTransportHoldsOutput() throws {
        let (e, t, h, c) = try holding(sendBufferSize: 2)
        c.enqueue(copying: Array("abcdef".utf8))
        e.run()
        #expect(c.queuedBytes == 0 && t.hasPendingOutput)
        c.notifyWhenDrained()
        e.run()
        #expect(h.drained == 0)
        #expect(readAll(t, e) == Array("abcdef".utf8))
        #expect(h.drained == 1)
    }

    /// A graceful close sends the queue, then the transport's close_notify,
    /// then FIN, and lingers for the peer's FIN.
    @Test func aGracefulCloseSendsCloseNotifyBeforeTheFIN() throws {
        let (e, t, h, c) = try holding(sendBufferSize: 3)
        c.enqueue(copying: Array("bye".utf8))
        c.close(afterFlush: true)
        e.run()
        #expect(readAll(t, e) == Array("bye".utf8) + [MemoryTransport.closeNotify])
        #expect(t.writeShutdown && h.closed)
        #expect(!t.isClosed, "lingering for the peer's FIN")
        t.peerShutdown()
        e.run()
        #expect(t.isClosed)
    }
}
}
