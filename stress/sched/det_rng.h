// The deterministic scheduler's generator: xoshiro256** (Blackman and Vigna),
// seeded through SplitMix64 as its authors recommend.  One generator per
// purpose (a stream number), so that, for instance, a spawn drawing a PCT
// priority does not shift the stream of scheduling choices.
#pragma once

#include <cstdint>

namespace faultline::stress {

class DetRng {
 public:
  DetRng(std::uint64_t seed, std::uint64_t stream) noexcept {
    std::uint64_t sm = seed ^ (0xd1b54a32d192ed03ull * (stream + 1));
    for (auto& w : s_) w = splitmix_next(sm);
  }
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n), n > 0 (Lemire's multiply-shift; bias below n / 2^64).
  std::uint64_t below(std::uint64_t n) noexcept {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

 private:
  static std::uint64_t splitmix_next(std::uint64_t& s) noexcept {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace faultline::stress
