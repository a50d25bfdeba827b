// Lock profile rows as JSON (nlohmann-json, header only: include it where
// nlohmann_json is linked; the locking library itself does not need it).
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "locking/profile.h"

namespace faultline::locking {

// One object per row, at most `max_rows`: class, the site if the row has one,
// acquisitions, contended, wait and hold totals and maxima in ns.
inline nlohmann::ordered_json profile_json(const std::vector<ProfileRow>& rows, std::size_t max_rows = SIZE_MAX) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < rows.size() && i < max_rows; ++i) {
    const ProfileRow& r = rows[i];
    nlohmann::ordered_json o = {{"class", r.lock_class}};
    if (!r.site.empty()) o["site"] = r.site;
    o["acquisitions"] = r.acquisitions;
    o["contended"] = r.contended;
    o["wait_ns_total"] = r.wait_ns_total;
    o["wait_ns_max"] = r.wait_ns_max;
    o["hold_ns_total"] = r.hold_ns_total;
    o["hold_ns_max"] = r.hold_ns_max;
    a.push_back(std::move(o));
  }
  return a;
}

}  // namespace faultline::locking
