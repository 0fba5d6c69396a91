#ifndef FUZZ_DRIVER_H
#define FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer (its flags and corpus folders in argv) on `callback`,
/// through libFuzzer's own driver, LLVMFuzzerRunDriver (compiler-rt).
///
/// Why: SwiftPM links an executable with `main` defined as `<module>_main`
/// (so that tests can link the module), which hides libFuzzer's `main`; each
/// target therefore defines `<module>_main` and calls this.
int relay_fuzz_main(int argc, char **argv, int (*callback)(const uint8_t *data, size_t size));

#endif
