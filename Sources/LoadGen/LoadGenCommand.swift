import ArgumentParser

@main
struct LoadGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Load generator for the relay (and nats-server over WebSocket, for comparison).",
        subcommands: [Fanout.self, Echo.self, Connections.self, Input.self, Attach.self])
}
