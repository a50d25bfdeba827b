// The default campaign (`faultline` with no arguments, or `faultline
// campaign`): the mixed scenario's long run, then short runs aimed at the
// windows it does not enter, one after another in this process.  Their reach
// tables are summed, and the campaign fails if a window of the catalogue
// (core/reach.h) was entered by none of them, as well as if a run fails.
#pragma once

#include <string>
#include <vector>

namespace faultline::stress {

struct CampaignRun {
  const char* name;
  const char* why;                // which windows it is there for
  std::vector<std::string> args;  // run options, as on the command line
};

const std::vector<CampaignRun>& default_campaign();

}  // namespace faultline::stress
