import Testing
@testable import Framing

@Suite struct JSONWriterTests {
    @Test func smallObject() {
        var w = JSONWriter()
        w.beginObject()
        w.key("status"); w.string("ok")
        w.endObject()
        #expect(w.text == #"{"status":"ok"}"#)
    }

    @Test func nestedWithAllKinds() {
        var w = JSONWriter()
        w.beginObject()
        w.key("channels"); w.integer(-3)
        w.key("bytes"); w.unsigned(UInt64.max)
        w.key("ratio"); w.number(0.5)
        w.key("list"); w.beginArray(); w.bool(true); w.null(); w.beginObject(); w.endObject(); w.beginArray(); w.endArray(); w.endArray()
        w.key("after"); w.bool(false)
        w.endObject()
        #expect(w.text == #"{"channels":-3,"bytes":18446744073709551615,"ratio":0.5,"list":[true,null,{},[]],"after":false}"#)
    }

    @Test func escaping() {
        #expect(JSONWriter.quoted("a\"b\\c/\n\r\t\u{8}\u{C}\u{0}\u{1F}é😀\u{7F}")
            == #""a\"b\\c/\n\r\t\b\f\u0000\u001fé😀"# + "\u{7F}\"")
    }

    @Test func numberFormatting() {
        #expect(JSONWriter.serialize(.array([.number(3), .number(-0.0), .number(1.5), .number(1e-7), .number(1e20),
                                             .number(.infinity), .number(.nan)]))
            == "[3,0,1.5,1e-07,1e+20,null,null]")
    }

    @Test func serializeRoundTrips() throws {
        let v = JSONValue.object([("a", .array([.string("x\u{2028}\"y"), .number(12), .null])), ("b", .bool(true))])
        let text = JSONWriter.serialize(v)
        #expect(text == "{\"a\":[\"x\u{2028}\\\"y\",12,null],\"b\":true}")
        #expect(try JSONParser.parse(text) == v)
    }
}
