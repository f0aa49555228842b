// sin and cos of a RoPE angle, accurate to ~1e-6 absolute for angles up to ~1e6 rad (positions
// of a 1M-token context; the reduction stays exact to 2^22 turns, ~2.6e7 rad), at a fraction of
// sincosf's cost.
//
// The angle is the float32 product position * inv_freq, rounded exactly as the plain-torch twin
// rounds it. sincosf would then take its slow Payne-Hanek path above 105615 rad and costs tens of
// instructions below; here the angle is reduced by 2*pi in two FMA steps (Cody-Waite with a
// two-float 2*pi: the products k*C are exact inside the FMA, so the remainder is off by about one
// float ulp of pi) and the hardware's __sincosf, accurate to 2^-21.4 on [-pi, pi], finishes.
#pragma once

namespace shadowkv {

__device__ __forceinline__ void rope_sincos(float position, float inv_freq, float* s, float* c) {
  constexpr float kInvTwoPi = 0.159154943091895336f;
  constexpr float kTwoPiHi = 6.28318548202514648f;       // float(2*pi), 1.7e-7 above 2*pi
  constexpr float kTwoPiLo = -1.74845553146951715e-07f;  // 2*pi - kTwoPiHi
  const float angle = __fmul_rn(position, inv_freq);     // no FMA contraction: the twin's rounding
  // Nearest whole turn by the 1.5 * 2^23 trick: two FMA-pipe instructions where rintf is a
  // quarter-rate one (Nsight Compute showed the rebuild's RoPE stalled on that pipe).
  constexpr float kRoundMagic = 12582912.0f;
  const float turns = __fadd_rn(__fmaf_rn(angle, kInvTwoPi, kRoundMagic), -kRoundMagic);
  float r = fmaf(-turns, kTwoPiHi, angle);
  r = fmaf(-turns, kTwoPiLo, r);
  __sincosf(r, s, c);
}

}  // namespace shadowkv
