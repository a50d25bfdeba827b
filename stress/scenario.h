// Named built-in scenarios: each sets the operation mix, the actors and the
// sizes that make one kind of race frequent.  The command line can still
// override any field afterwards.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "stress/config.h"

namespace faultline::stress {

struct Scenario {
  const char* name;
  const char* what;
  void (*apply)(Config&);
};

const std::vector<Scenario>& scenarios();
const Scenario* find_scenario(std::string_view name);
// "fault-storm, pageout, ..." for messages.
std::string scenario_names();

}  // namespace faultline::stress
