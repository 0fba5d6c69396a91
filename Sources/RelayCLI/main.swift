import RelayNode

// `relay attach …` runs a command as a pod's runner; everything else serves
// (`relay`, `relay serve`, with the settings table's flags).
var arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "attach":
    AttachCommand.main(Array(arguments.dropFirst()))
case "serve":
    arguments.removeFirst()
    RelayProcess.serve(arguments: arguments)
default:
    RelayProcess.serve(arguments: arguments)
}
