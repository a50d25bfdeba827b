// A schedule written down (what `faultline shrink` reduces): the choices
// that differ from default_choice(), by decision number; every other choice
// is the default.  The default runs the current worker on (no preemption)
// or, when it cannot run, the lowest id.  So a script's entries are its
// preemptions and its unusual hand-offs, and an empty script is the
// non-preemptive schedule.
#include <charconv>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "stress/sched/policy.h"

namespace faultline::stress {

std::size_t default_choice(const Choice& c) noexcept {
  if (c.current >= 0) return c.runnable.size() - 1;
  std::size_t best = 0;
  for (std::size_t i = 1; i < c.runnable.size(); ++i)
    if (c.runnable[i] < c.runnable[best]) best = i;
  return best;
}

std::string format_script(const Script& s) {
  std::string out;
  for (const auto& [d, w] : s) out += fmt::format("{}{}:{}", out.empty() ? "" : ",", d, w);
  return out;
}

std::optional<std::string> parse_script(const std::string& given, Script& out) {
  out.clear();
  // "@FILE": the script is in FILE (a long one does not fit in one
  // command-line argument: Linux takes at most 128 KiB).
  std::string text = given;
  if (!given.empty() && given[0] == '@') {
    std::ifstream in(given.substr(1));
    if (!in) return fmt::format("--script '{}': cannot read {}", given, given.substr(1));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  }
  std::uint64_t last = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(pos, end - pos);
    const std::size_t colon = part.find(':');
    std::uint64_t d = 0;
    int w = -1;
    const char* b = part.data();
    const char* e = b + part.size();
    if (colon == std::string::npos || std::from_chars(b, b + colon, d).ptr != b + colon ||
        std::from_chars(b + colon + 1, e, w).ptr != e || colon + 1 == part.size() || d == 0 || w < 0)
      return fmt::format("--script: '{}' is not DECISION:WORKER (a decision from 1, a worker id from 0)", part);
    if (d <= last) return fmt::format("--script: decision {} is not after {} (decisions must increase)", d, last);
    last = d;
    out[d] = w;
    pos = end + 1;
  }
  return std::nullopt;
}

namespace {

class ScriptPolicy final : public SchedPolicy {
 public:
  explicit ScriptPolicy(Script s) : script_(std::move(s)) {}
  std::size_t choose(const Choice& c) override {
    if (auto it = script_.find(c.decision); it != script_.end()) {
      const auto w = static_cast<std::size_t>(it->second);
      if (w < c.slot.size() && c.slot[w] < c.runnable.size() && c.runnable[c.slot[w]] == it->second)
        return c.slot[w];
    }
    return default_choice(c);
  }

 private:
  Script script_;
};

}  // namespace

std::unique_ptr<SchedPolicy> make_script_policy(Script script) {
  return std::make_unique<ScriptPolicy>(std::move(script));
}

}  // namespace faultline::stress
