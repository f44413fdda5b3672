#include "rope.h"

#include <cmath>

namespace lk {

void rope_angles(int32_t pos, const float* inv_freq, int64_t half, float* c, float* s) {
  for (int64_t i = 0; i < half; ++i) {
    const double ang = static_cast<double>(static_cast<float>(pos) * inv_freq[i]);
    c[i] = static_cast<float>(std::cos(ang));
    s[i] = static_cast<float>(std::sin(ang));
  }
}

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
void rope_rotate_row(float* x, int64_t half, const float* c, const float* s, bool interleaved) {
  for (int64_t i = 0; i < half; ++i) {
    const int64_t ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
    const float a = x[ia], b = x[ib];
    const float p = a * c[i], q = b * s[i], r = b * c[i], t = a * s[i];
    x[ia] = p - q;
    x[ib] = r + t;
  }
}

}  // namespace lk
