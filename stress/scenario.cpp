#include "stress/scenario.h"

namespace faultline::stress {

namespace {

void set_mix(Config& c, std::initializer_list<std::pair<Op, std::uint32_t>> weights) {
  c.mix = Mix{};
  for (auto [op, w] : weights) c.mix[static_cast<std::size_t>(op)] = w;
}

}  // namespace

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> all = {
      {"fault-storm", "many threads reading and writing the same pages, some lent to zero-copy sends; plenty of memory",
       [](Config& c) {
         set_mix(c, {{Op::kRead, 60}, {Op::kWrite, 40}, {Op::kSend, 3}});
         c.pages = 1024;
         c.workers = 8;
         c.pagedaemon = true;
         c.truncator = false;
       }},
      {"pageout", "anonymous memory three times the physical pages: laundering to swap and paging back in; a device",
       [](Config& c) {
         set_mix(c, {{Op::kRead, 50}, {Op::kWrite, 50}, {Op::kDevRead, 5}});
         c.pages = 96;
         c.anon_pages = 96;
         c.truncator = false;
       }},
      {"truncate", "readers and writers of a shared file mapping while it is truncated and regrown",
       [](Config& c) {
         set_mix(c, {{Op::kFileRead, 70}, {Op::kFileWrite, 10}, {Op::kRead, 10}, {Op::kWrite, 10}});
         c.truncator = true;
       }},
      {"fork", "fork and exit storms: children inherit copy-on-write memory, write, and exit",
       [](Config& c) {
         set_mix(c, {{Op::kRead, 40}, {Op::kWrite, 40}, {Op::kFork, 4}});
         c.truncator = false;
         c.max_live_processes = 12;
         c.max_forks = 600;
       }},
      {"mprotect-munmap", "mprotect and munmap/mmap of regions while other threads fault on them",
       [](Config& c) {
         set_mix(c, {{Op::kRead, 35}, {Op::kWrite, 35}, {Op::kProtect, 8}, {Op::kChurn, 8}});
         c.truncator = false;
       }},
      {"wiring", "mlock and munlock of pages under memory pressure, with forks copying wired entries",
       [](Config& c) {
         set_mix(c, {{Op::kRead, 40}, {Op::kWrite, 40}, {Op::kWire, 8}, {Op::kFork, 1}});
         c.truncator = false;
       }},
      {"mixed", "all of the above at once, with memory pressure (the default)",
       [](Config& c) {
         set_mix(c, {{Op::kRead, 30},
                     {Op::kWrite, 30},
                     {Op::kFileRead, 12},
                     {Op::kFileWrite, 3},
                     {Op::kFork, 2},
                     {Op::kProtect, 3},
                     {Op::kChurn, 3},
                     {Op::kWire, 2},
                     {Op::kAdvise, 1},
                     {Op::kSend, 2},
                     {Op::kDevRead, 3}});
         c.pagedaemon = true;
         c.truncator = true;
         // The default campaign: about 20 s of one deterministic run on
         // this hardware's one core (see README), every racing operation.
         c.ops = 200000;
         c.max_forks = 5000;
       }},
  };
  return all;
}

const Scenario* find_scenario(std::string_view name) {
  for (const Scenario& s : scenarios())
    if (name == s.name) return &s;
  return nullptr;
}

std::string scenario_names() {
  std::string out;
  for (const Scenario& s : scenarios()) {
    if (!out.empty()) out += ", ";
    out += s.name;
  }
  return out;
}

}  // namespace faultline::stress
