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
      {"truncate", "readers and writers of a shared file mapping while it is truncated and regrown; mlock and"
                   " zero-copy sends of its pages; forks",
       [](Config& c) {
         set_mix(c, {{Op::kFileRead, 70}, {Op::kFileWrite, 10}, {Op::kRead, 10}, {Op::kWrite, 10}, {Op::kWireFile, 6},
                     {Op::kSendFile, 4}, {Op::kFork, 1}});
         c.truncator = true;
       }},
      // The file's mmap8/mmap10 (see wire-storm): mprotect read-only and
      // back, mlock, madvise and sends of runs of the shared file mapping
      // while it is truncated and processes fork.  Kept apart from truncate:
      // the seed's L309-310 soon leaves an mlocked entry without write in
      // its maximum protection here, and the process's stores to the file
      // are refused from then on.
      {"file-storm", "forks racing mprotect, mlock, madvise, munmap and sends of a shared file mapping while it is"
                     " truncated",
       [](Config& c) {
         set_mix(c, {{Op::kFileRead, 40},
                     {Op::kFileWrite, 10},
                     {Op::kWireFile, 10},
                     {Op::kSendFile, 5},
                     {Op::kProtectFile, 8},
                     {Op::kAdviseFile, 4},
                     {Op::kUnmapFile, 3},
                     {Op::kFork, 2},
                     {Op::kRead, 10},
                     {Op::kWrite, 10}});
         c.truncator = true;
         c.max_live_processes = 12;
         c.max_forks = 400;
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
      // After FreeBSD stress2's misc/mmap28.sh (one process: a shared file
      // mapping, ftruncate to half, then reads across the whole original
      // length, some past the new end): here several processes read (and
      // some write) the whole shared mapping while the file is cut to a
      // random length, left short a while, and grown back.
      {"truncate-shared", "readers across a whole shared file mapping while the file is cut, left short, and regrown"
                          " (after stress2 mmap28)",
       [](Config& c) {
         set_mix(c, {{Op::kFileRead, 85}, {Op::kFileWrite, 5}, {Op::kRead, 5}, {Op::kWrite, 5}});
         c.file_pages = 64;
         c.pagedaemon = true;
         c.truncator = true;
       }},
      // After stress2's misc/mmap8.sh (mprotect read-only, mlock, mprotect
      // read-write, munmap of memory a child shares after fork) and
      // misc/mmap10.sh (threads racing mmap/munmap, mlock/munlock and
      // mprotect while the process forks, under swap pressure).
      {"wire-storm", "forks racing mprotect, mlock/munlock, munmap/mmap and madvise under memory pressure"
                     " (after stress2 mmap8, mmap10)",
       [](Config& c) {
         set_mix(c, {{Op::kRead, 25},
                     {Op::kWrite, 25},
                     {Op::kFork, 8},
                     {Op::kProtect, 15},
                     {Op::kWire, 15},
                     {Op::kChurn, 8},
                     {Op::kAdvise, 4}});
         c.pages = 128;
         c.truncator = false;
         c.max_live_processes = 12;
         c.max_forks = 400;
       }},
      // After stress2's misc/collapse.sh (process trees six levels deep,
      // three children each, writing inherited memory and exiting at random
      // times "to collapse some portion of the chain", under swap
      // pressure): children fork too, one thread each, so shadow chains
      // grow deep and collapse as their processes exit.
      {"fork-tree", "deep fork trees whose processes write inherited memory and exit: long shadow chains"
                    " collapsing (after stress2 collapse.sh)",
       [](Config& c) {
         set_mix(c, {{Op::kRead, 40}, {Op::kWrite, 40}, {Op::kFork, 12}});
         c.pages = 128;
         c.child_workers = 1;
         c.child_ops = 60;
         c.truncator = false;
         c.max_live_processes = 24;
         c.max_forks = 1500;
       }},
      // Private (copy-on-write) mappings of the file beside the shared
      // ones, while the file is cut, left short and regrown and processes
      // fork: a page no store has copied reads the file itself and faults
      // past its end; a copied one keeps its copy.  Runs of the shared
      // mapping are mlocked too, so a private fault past the end meets a
      // page the cut left wired in the file's object below its shadow
      // (L621-625: fix fault-keeps-wired); and runs of the private mapping
      // are mlocked (which copies them) and madvised.  The mixed scenario
      // leaves file-private out (so its schedules, and the campaign's, stay
      // as they were).
      {"private-file", "stores and reads through private (copy-on-write) mappings of a file while it is truncated"
                       " and regrown, and processes fork",
       [](Config& c) {
         set_mix(c, {{Op::kFilePrivate, 50},
                     {Op::kFileRead, 15},
                     {Op::kFileWrite, 10},
                     {Op::kWireFile, 5},
                     {Op::kWirePrivate, 5},
                     {Op::kAdviseFile, 2},
                     {Op::kFork, 3},
                     {Op::kRead, 10},
                     {Op::kWrite, 10}});
         c.pagedaemon = true;
         c.truncator = true;
         c.max_live_processes = 12;
         c.max_forks = 300;
       }},
      // The private mapping's mmap8/mmap10 (as file-storm is the shared
      // mapping's): mprotect read-only and back, madvise and munmap
      // (dropping the copies; the file mapped privately again) of runs of
      // the private file mapping, racing its stores and reads, forks and
      // the truncation of the file.  mlock-private is left out: with
      // mprotect-private it wires the file's own pages through a read-only
      // private entry, and where a truncation then meets them the model
      // still fails (see core/README.md, "Open"); without the truncator
      // (`--no-truncator --mix mlock-private=8`, the campaign's run
      // private-wired) it runs, and reaches fix protect-copies-wired.
      {"private-storm", "forks racing mprotect, madvise and munmap of a private file mapping while it is stored to"
                        " and the file is truncated",
       [](Config& c) {
         set_mix(c, {{Op::kFilePrivate, 50},
                     {Op::kProtectPrivate, 8},
                     {Op::kUnmapPrivate, 4},
                     {Op::kAdviseFile, 3},
                     {Op::kFork, 3},
                     {Op::kFileRead, 10},
                     {Op::kFileWrite, 5},
                     {Op::kWireFile, 3},
                     {Op::kRead, 5},
                     {Op::kWrite, 5}});
         c.pagedaemon = true;
         c.truncator = true;
         c.max_live_processes = 12;
         c.max_forks = 300;
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
