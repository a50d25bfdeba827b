// The faultline command line (CLI11).  Kept apart from main() so that tests
// can drive it: parse errors and bad values must exit 2 naming the value.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "stress/config.h"

namespace faultline::stress {

// Runs the command line `args` (without the program name); output goes to
// stdout/stderr.  Returns the process exit code: 0 pass, 1 a protocol
// failure found, 2 bad usage or configuration.
int cli_main(const std::vector<std::string>& args);

// One run's options (a replay line's words, without the program name) into
// a Config: the scenario's defaults, then the options.  A message naming the
// first bad value, or nothing.
std::optional<std::string> parse_run_args(const std::vector<std::string>& args, Config& out);

}  // namespace faultline::stress
