// The faultline command line (CLI11).  Kept apart from main() so that tests
// can drive it: parse errors and bad values must exit 2 naming the value.
#pragma once

#include <string>
#include <vector>

namespace faultline::stress {

// Runs the command line `args` (without the program name); output goes to
// stdout/stderr.  Returns the process exit code: 0 pass, 1 a protocol
// failure found, 2 bad usage or configuration.
int cli_main(const std::vector<std::string>& args);

}  // namespace faultline::stress
