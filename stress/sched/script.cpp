// A schedule written down (what `faultline shrink` reduces): the choices
// that differ from default_choice(), each by where it is made (ChoiceKey:
// the worker that ran last and how far it had got); every other choice
// is the default.  The default runs the current worker on (no preemption)
// or, when it cannot run, the lowest id.  So a script's entries are its
// preemptions and its unusual hand-offs, and an empty script is the
// non-preemptive schedule.
#include <charconv>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

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

namespace {

// Characters a worker's name may not contain in a script.
bool bad_name(std::string_view n) { return n.empty() || n.find_first_of("@:, ") != std::string_view::npos; }

}  // namespace

std::string format_place(const Place& p) {
  return p.after == 0 ? fmt::format("{}@{}", p.by, p.point) : fmt::format("{}@{}.{}", p.by, p.point, p.after);
}

std::optional<std::string> parse_place(std::string_view text, Place& out) {
  auto bad = [&] {
    return fmt::format("'{}' is not a choice's place NAME@POINT[.AFTER] (a worker's name, or - before any ran;"
                       " the schedule points it had reached; the choices after the last one)",
                       text);
  };
  const std::size_t at = text.rfind('@');
  if (at == std::string_view::npos) return bad();
  Place p;
  p.by = std::string(text.substr(0, at));
  if (bad_name(p.by)) return bad();
  const std::string_view rest = text.substr(at + 1);
  const std::size_t dot = rest.find('.');
  const std::string_view point = rest.substr(0, dot);
  if (point.empty() ||
      std::from_chars(point.data(), point.data() + point.size(), p.point).ptr != point.data() + point.size())
    return bad();
  if (dot != std::string_view::npos) {
    const std::string_view after = rest.substr(dot + 1);
    if (after.empty() ||
        std::from_chars(after.data(), after.data() + after.size(), p.after).ptr != after.data() + after.size() ||
        p.after == 0)
      return bad();
  }
  out = std::move(p);
  return std::nullopt;
}

std::string format_script(const Script& s) {
  std::string out;
  for (const ScriptEntry& e : s) out += fmt::format("{}{}:{}", out.empty() ? "" : ",", format_place(e.at), e.worker);
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
  std::set<Place> seen;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view part = std::string_view(text).substr(pos, end - pos);
    const std::size_t colon = part.rfind(':');
    ScriptEntry e;
    if (colon == std::string_view::npos)
      return fmt::format("--script: '{}' is not PLACE:NAME (PLACE as NAME@POINT[.AFTER])", part);
    if (auto err = parse_place(part.substr(0, colon), e.at)) return "--script: " + *err;
    e.worker = std::string(part.substr(colon + 1));
    if (bad_name(e.worker) || e.worker == "-")
      return fmt::format("--script: '{}' is not PLACE:NAME (the worker to run, by name)", part);
    if (!seen.insert(e.at).second)
      return fmt::format("--script: the place {} is named twice", format_place(e.at));
    out.push_back(std::move(e));
    pos = end + 1;
  }
  return std::nullopt;
}

namespace {

class ScriptPolicy final : public SchedPolicy {
 public:
  explicit ScriptPolicy(const Script& s) {
    for (const ScriptEntry& e : s) script_.emplace(e.at, e.worker);
  }
  void spawned(int id, std::string_view name) override {
    if (names_.size() <= static_cast<std::size_t>(id)) names_.resize(static_cast<std::size_t>(id) + 1);
    names_[static_cast<std::size_t>(id)] = std::string(name);
    ids_[std::string(name)] = id;
  }
  std::size_t choose(const Choice& c) override {
    Place at;
    if (c.key.by >= 0) at.by = names_[static_cast<std::size_t>(c.key.by)];
    at.point = c.key.point;
    at.after = c.key.after;
    if (auto it = script_.find(at); it != script_.end()) {
      // A worker the run does not have, or not runnable here: the default.
      if (auto w = ids_.find(it->second); w != ids_.end()) {
        const auto id = static_cast<std::size_t>(w->second);
        if (id < c.slot.size() && c.slot[id] < c.runnable.size() && c.runnable[c.slot[id]] == w->second)
          return c.slot[id];
      }
    }
    return default_choice(c);
  }

 private:
  std::map<Place, std::string> script_;
  std::vector<std::string> names_;   // by id
  std::map<std::string, int> ids_;   // by name (a name used twice: the later worker)
};

}  // namespace

std::unique_ptr<SchedPolicy> make_script_policy(Script script) {
  return std::make_unique<ScriptPolicy>(script);
}

}  // namespace faultline::stress
