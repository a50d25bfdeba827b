#include "stress/cli/campaign.h"

namespace faultline::stress {

const std::vector<CampaignRun>& default_campaign() {
  static const std::vector<CampaignRun> runs = {
      {"mixed", "every operation at once under memory pressure: most windows", {}},
      {"pager-errors", "pager read errors (seed L601-620: fault.pager_error)",
       {"--scenario", "pageout", "--ops", "2000", "--io-error-ppm", "20000"}},
      {"lent-rename", "a COW rename meeting a page lent to a send (fault.rename_lent_copied)",
       {"--scenario", "mixed", "--ops", "2000", "--workers", "3", "--anon-pages", "2", "--child-ops", "2",
        "--io-latency-us", "2000", "--pages", "48", "--mix",
        "read=10,write=5,file-read=0,fork=30,mlock=30,send=30,munmap=0,mprotect=0,dev-read=0,file-write=0,madvise=0,"
        "mlock-file=0",
        "--seed", "1"}},
      {"mlock-inaccessible", "mlock of PROT_NONE pages (seed L249-271: fault.wire_override)",
       {"--scenario", "wiring", "--ops", "300", "--mix", "mlock-none=5"}},
      {"fork-quick-collapse", "a fork's quick collapse under a fault's placeholder (collapse.qcollapse_kept)",
       {"--scenario", "fork", "--ops", "2000", "--pages", "96", "--seed", "168"}},
      {"wired-file", "mlock and sends of the shared file mapping while it is truncated (truncate.wired,"
                     " unwire.unmapped, fault.past_eof_resident)",
       {"--scenario", "truncate", "--ops", "2000"}},
      {"file-storm", "mlock, mprotect, madvise and munmap of runs of the shared file mapping while it is truncated"
                     " (the file oracle's rules for seed L309-310)",
       {"--scenario", "file-storm", "--ops", "2000"}},
      {"private-file", "private copy-on-write mappings of the file while it is truncated (the file-private oracle;"
                       " fault.pager_failed_wired)",
       {"--scenario", "private-file", "--ops", "2000"}},
      {"private-storm", "mprotect, madvise and munmap of runs of the private file mapping while it is stored to and"
                        " the file truncated (the file-private oracle's records of each)",
       {"--scenario", "private-storm", "--ops", "2000"}},
      {"private-wired", "mlock of the private file mapping mprotected read-only meanwhile"
                        " (mprotect.wiring_wait, mprotect.wired_copy)",
       {"--scenario", "private-storm", "--ops", "2000", "--no-truncator", "--mix", "mlock-private=8"}},
  };
  return runs;
}

}  // namespace faultline::stress
