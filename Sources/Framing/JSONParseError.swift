public struct JSONParseError: Error, Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case tooLarge
        case tooDeep
        case unexpectedEnd
        case unexpectedCharacter
        case invalidNumber
        /// Raw control character or invalid UTF-8 inside a string.
        case invalidString
        case invalidEscape
        /// A \u escape that is a lone or mismatched UTF-16 surrogate.
        case invalidSurrogate
        case duplicateKey
        case trailingCharacters
    }

    public let kind: Kind
    /// Byte offset where the problem was found.
    public let offset: Int

    public init(_ kind: Kind, at offset: Int) {
        self.kind = kind
        self.offset = offset
    }
}
