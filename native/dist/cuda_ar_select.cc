// The algorithm of a collective on CUDA tensors: see cuda_ar.h ("Selection") for the rule and its untuned
// thresholds.
// A pure function of values every rank shares (the message size, R, and flags agreed at open), so every rank
// picks the same algorithm for the same call: a rank on one-shot while its peer runs NCCL would wait forever.
#include "cuda_ar.h"

namespace lk::dist {

const char* ar_algo_name(ArAlgo a) {
  switch (a) {
    case ArAlgo::one_shot: return "one_shot";
    case ArAlgo::two_shot: return "two_shot";
    case ArAlgo::nccl: return "nccl";
    case ArAlgo::none: return "none";
  }
  return "none";
}

ArAlgo select_all_reduce(const ArSelectInput& in, std::string* why) {
  auto say = [&](ArAlgo a, const std::string& w) {
    if (why != nullptr) *why = w;
    return a;
  };
  const bool custom = in.custom && in.world >= 1 && in.world <= kArMaxRanks;
  if (custom) {
    const uint64_t reads = in.bytes * static_cast<uint64_t>(in.world);
    if (in.world == 1 || reads <= kOneShotMaxReadBytes || (in.bytes / kTwoShotMinSlice) < static_cast<uint64_t>(in.world))
      return say(ArAlgo::one_shot, "custom one-shot: R x bytes = " + std::to_string(reads) + " <= " +
                                      std::to_string(kOneShotMaxReadBytes) + " (or too small to split in R slices)");
    if (in.bytes <= kTwoShotMaxBytes)
      return say(ArAlgo::two_shot, "custom two-shot: " + std::to_string(in.bytes) + " bytes <= " + std::to_string(kTwoShotMaxBytes));
    if (in.nccl) return say(ArAlgo::nccl, "nccl: " + std::to_string(in.bytes) + " bytes > " + std::to_string(kTwoShotMaxBytes));
    return say(ArAlgo::two_shot, "custom two-shot in chunks: " + std::to_string(in.bytes) + " bytes, NCCL not loaded");
  }
  if (in.nccl)
    return say(ArAlgo::nccl, in.world > kArMaxRanks ? "nccl: more than " + std::to_string(kArMaxRanks) + " ranks for the custom kernels"
                                                    : std::string("nccl: the custom all-reduce is not registered (no P2P between every pair of ranks)"));
  return say(ArAlgo::none, "no CUDA all-reduce: the custom kernels are not registered (" +
                               std::string(in.world > kArMaxRanks ? "more than 8 ranks" : "no P2P between every pair of ranks") +
                               ") and NCCL is not loaded");
}

ArAlgo select_collective(Collective kind, const ArSelectInput& in, std::string* why) {
  if (kind == Collective::all_reduce) return select_all_reduce(in, why);
  auto say = [&](ArAlgo a, const std::string& w) {
    if (why != nullptr) *why = w;
    return a;
  };
  const bool custom = in.custom && in.world >= 1 && in.world <= kArMaxRanks;
  const uint64_t reads = kind == Collective::all_gather ? in.bytes * static_cast<uint64_t>(in.world) : in.bytes;
  if (custom && reads <= kTwoShotMaxBytes)
    return say(ArAlgo::one_shot, "custom: reads " + std::to_string(reads) + " bytes <= " + std::to_string(kTwoShotMaxBytes));
  if (in.nccl)
    return say(ArAlgo::nccl, custom ? "nccl: reads " + std::to_string(reads) + " bytes > " + std::to_string(kTwoShotMaxBytes)
                                    : std::string(in.world > kArMaxRanks ? "nccl: more than 8 ranks for the custom kernels"
                                                                         : "nccl: the custom kernels are not registered (no P2P between every pair of ranks)"));
  if (custom) return say(ArAlgo::one_shot, "custom in chunks: reads " + std::to_string(reads) + " bytes, NCCL not loaded");
  return say(ArAlgo::none, std::string("no CUDA ") + collective_name(kind) + ": the custom kernels are not registered (" +
                               (in.world > kArMaxRanks ? "more than 8 ranks" : "no P2P between every pair of ranks") +
                               ") and NCCL is not loaded");
}

}  // namespace lk::dist
