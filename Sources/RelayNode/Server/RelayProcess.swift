import Glibc
import Logging

/// `relay serve` as a process: settings, logging, the server, dev mode,
/// and the exit status.
public enum RelayProcess {
    /// Parses `arguments` (after `serve`), runs until the loops stop, and exits.
    public static func serve(arguments: [String]) -> Never {
        var settings: RelaySettings
        do {
            switch try SettingsCommandLine.parse(arguments) {
            case .help:
                print(SettingsCommandLine.help, terminator: "")
                exit(0)
            case .serve(let flags, let configPath):
                var sources = SettingSources(flags: flags, environment: ProcessEnvironment.all())
                if let configPath {
                    sources.file = try ConfigFile.load(path: configPath)
                    sources.fileName = configPath
                }
                settings = try RelaySettings.resolve(sources, hostname: ProcessEnvironment.hostname())
            }
        } catch {
            fail("\(error)")
        }
        let format: LineLogHandler.Format = settings.logFormat == "json" ? .json : .logfmt
        let level = Logger.Level(rawValue: settings.logLevel) ?? .info
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: format, logLevel: level) }
        let logger = Logger(label: "relay")
        var dev: DevMode? = nil
        if settings.dev {
            dev = DevMode(settings: settings)
            settings = dev!.settings
        }
        let server: RelayServer
        do {
            let page = WebPage.load(root: settings.webRoot ?? WebPage.defaultRoot(), enabled: settings.dev || settings.webRoot != nil, logger: logger)
            server = try RelayServer(settings: settings, logger: logger, webPage: page)
            try server.start()
            try dev?.start(port: server.port, logger: logger)
        } catch {
            fail("\(error)")
        }
        server.wait()
        dev?.stop()
        logger.notice("relay stopped")
        exit(0)
    }

    /// One line on stderr, exit status 1.
    public static func fail(_ message: String) -> Never {
        var line = Array("relay: error: \(message)\n".utf8)
        _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        exit(1)
    }
}
