// Seeded randomness for the harness.  Every random choice of a run draws from
// a generator derived from the run's seed and a stream number (one per
// worker, actor or purpose), so a run is a function of its configuration.
#pragma once

#include <cstdint>

namespace faultline::stress {

// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator with good
// statistical quality, used both as the generator and to derive streams.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept : s_(seed) {}
  // The generator for stream `stream` of run seed `seed`.
  static Rng stream(std::uint64_t seed, std::uint64_t stream) noexcept {
    Rng r(seed ^ (0x9e3779b97f4a7c15ull * (stream + 1)));
    r.next();
    return Rng(r.next());
  }
  std::uint64_t next() noexcept {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0 (Lemire's multiply-shift; the bias is below
  // 2^-32 for the small n used here).
  std::uint64_t below(std::uint64_t n) noexcept {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  bool chance(std::uint32_t ppm) noexcept { return below(1'000'000) < ppm; }

 private:
  std::uint64_t s_;
};

}  // namespace faultline::stress
