// Shared body of the SIMD flash-attention kernels (see attention.h). Not a normal header: it is
// included by attention_avx2.cpp and attention_avx512.cpp *inside an anonymous namespace*, after
// each has included <immintrin.h>, <algorithm>, <cmath>, "backend/cpu/attention.h" and
// "ops/quant_blocks.h" and defined
//   KANDIL_ATTN_TARGET  the target attribute every function here is compiled with, and
//   struct Simd         its vector width W (floats), the V chunk kCh (vectors per row kept in
//                       registers) and the float-vector operations used below.
// Each ISA thus gets its own internal-linkage copy: no symbol is shared between the two (an
// AVX-512 instantiation must never be picked by the linker for the AVX2 path), and only these
// functions use the extensions, the rest of the binary stays baseline x86-64.
//
// Per task (one token, the `rows` query heads of one KV head, keys [j0, j1)), Phase::online:
//   for each tile of kTile keys:
//     scores[r][j] = (q_r . k_j) * scale      each K row is loaded once for up to 4 query rows
//     online softmax per row: m' = max(m, max_j s), acc *= exp(m - m'), l = l * exp(m - m') +
//                             sum_j exp(s - m'), s <- exp(s - m')
//     acc[r] += s[r][j] * v_j                 each V row is loaded once for up to 4 query rows,
//                                             accumulators stay in registers across the tile
// The F16 cache's phases (FlashTask::Phase) walk the tiles twice: the first pass only advances m
// and l, the second recomputes the scores and accumulates V with the normalized weights rounded to
// F16. The Q8_0 Q.K uses integer sums per 32-element block (AVX2 maddubs, also on AVX-512).

#ifndef KANDIL_ATTN_TARGET
#error "attention_kernel.h is included by the per-ISA attention files only"
#endif

enum class Kv { F32, F16, Q8_0 };

constexpr int kTile = AttentionScratch::kTile;
constexpr int kMaxRowBlock = 4;  // query rows sharing one pass over a K / V tile

KANDIL_ATTN_TARGET inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

KANDIL_ATTN_TARGET inline float half(uint16_t h) { return _cvtsh_ss(h); }

// W values of a K or V row from element d (d % W == 0; W divides the 32-element Q8_0 block).
template <Kv KT>
KANDIL_ATTN_TARGET inline Simd::F load_row(const uint8_t* row, int d) {
  if constexpr (KT == Kv::F32) {
    return Simd::load(reinterpret_cast<const float*>(row) + d);
  } else if constexpr (KT == Kv::F16) {
    return Simd::load_f16(reinterpret_cast<const uint16_t*>(row) + d);
  } else {
    const ops::BlockQ8_0* b = reinterpret_cast<const ops::BlockQ8_0*>(row) + d / ops::kQK;
    return Simd::mul(Simd::set1(half(b->d)), Simd::load_i8(b->qs + d % ops::kQK));
  }
}

// Scores of GB float query rows (qf, stride hd) against the n keys of a tile.
template <Kv KT, int GB>
KANDIL_ATTN_TARGET inline void score_rows(const detail::FlashTask& t, const float* qf,
                                          const uint8_t* k0, int n, float* s) {
  const int hd = t.head_dim;
  for (int j = 0; j < n; ++j) {
    const uint8_t* krow = k0 + static_cast<size_t>(j) * t.row_bytes;
    Simd::F acc[GB];
    for (int g = 0; g < GB; ++g) acc[g] = Simd::zero();
    for (int d = 0; d < hd; d += Simd::W) {
      const Simd::F kv = load_row<KT>(krow, d);
      for (int g = 0; g < GB; ++g) acc[g] = Simd::fma(Simd::load(qf + g * hd + d), kv, acc[g]);
    }
    for (int g = 0; g < GB; ++g) s[g * kTile + j] = Simd::hsum(acc[g]) * t.scale;
  }
}

// As score_rows for a Q8_0 cache: the query rows are Q8_0 too (qb, hd / 32 blocks per row).
// |q|, |k| <= 127, so maddubs' 16-bit pair sums cannot saturate.
template <int GB>
KANDIL_ATTN_TARGET inline void score_rows_q8(const detail::FlashTask& t, const ops::BlockQ8_0* qb,
                                             const uint8_t* k0, int n, float* s) {
  const int nb = t.head_dim / ops::kQK;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int j = 0; j < n; ++j) {
    const ops::BlockQ8_0* kb =
        reinterpret_cast<const ops::BlockQ8_0*>(k0 + static_cast<size_t>(j) * t.row_bytes);
    __m256 acc[GB];
    for (int g = 0; g < GB; ++g) acc[g] = _mm256_setzero_ps();
    for (int b = 0; b < nb; ++b) {
      const __m256i kq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kb[b].qs));
      const __m256i kabs = _mm256_sign_epi8(kq, kq);
      const float dk = half(kb[b].d);
      for (int g = 0; g < GB; ++g) {
        const ops::BlockQ8_0& q = qb[g * nb + b];
        const __m256i qq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.qs));
        const __m256i p16 = _mm256_maddubs_epi16(kabs, _mm256_sign_epi8(qq, kq));
        const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc[g] = _mm256_fmadd_ps(_mm256_set1_ps(dk * half(q.d)), p, acc[g]);
      }
    }
    for (int g = 0; g < GB; ++g) s[g * kTile + j] = hsum256(acc[g]) * t.scale;
  }
}

// acc[r0 + g][d0 .. d0 + CH*W) += sum_j p[g][j] * v_j[...], for g < GB.
template <Kv KT, int GB, int CH>
KANDIL_ATTN_TARGET inline void accumulate_v(const detail::FlashTask& t, int r0, int d0,
                                            const uint8_t* v0, int n) {
  const int hd = t.head_dim;
  Simd::F a[GB][CH];
  for (int g = 0; g < GB; ++g) {
    for (int c = 0; c < CH; ++c) a[g][c] = Simd::load(t.acc + (r0 + g) * hd + d0 + c * Simd::W);
  }
  const float* p = t.scores + r0 * kTile;
  for (int j = 0; j < n; ++j) {
    const uint8_t* vrow = v0 + static_cast<size_t>(j) * t.row_bytes;
    Simd::F v[CH];
    for (int c = 0; c < CH; ++c) v[c] = load_row<KT>(vrow, d0 + c * Simd::W);
    for (int g = 0; g < GB; ++g) {
      const Simd::F w = Simd::set1(p[g * kTile + j]);
      for (int c = 0; c < CH; ++c) a[g][c] = Simd::fma(w, v[c], a[g][c]);
    }
  }
  for (int g = 0; g < GB; ++g) {
    for (int c = 0; c < CH; ++c) Simd::store(t.acc + (r0 + g) * hd + d0 + c * Simd::W, a[g][c]);
  }
}

template <Kv KT, int GB>
KANDIL_ATTN_TARGET inline void accumulate_v_rows(const detail::FlashTask& t, int r0,
                                                 const uint8_t* v0, int n) {
  int d0 = 0;
  for (; d0 + Simd::kCh * Simd::W <= t.head_dim; d0 += Simd::kCh * Simd::W) {
    accumulate_v<KT, GB, Simd::kCh>(t, r0, d0, v0, n);
  }
  for (; d0 < t.head_dim; d0 += Simd::W) accumulate_v<KT, GB, 1>(t, r0, d0, v0, n);
}

// The tile's scores for all rows, in blocks of up to kMaxRowBlock rows. (Plain switches rather
// than a lambda: a lambda's body would not inherit KANDIL_ATTN_TARGET.)
template <Kv KT, int GB>
KANDIL_ATTN_TARGET inline void score_block(const detail::FlashTask& t, const float* qf,
                                           const ops::BlockQ8_0* qb, int r0, const uint8_t* k0,
                                           int n) {
  if constexpr (KT == Kv::Q8_0) {
    score_rows_q8<GB>(t, qb + r0 * (t.head_dim / ops::kQK), k0, n, t.scores + r0 * kTile);
  } else {
    score_rows<KT, GB>(t, qf + r0 * t.head_dim, k0, n, t.scores + r0 * kTile);
  }
}

template <Kv KT>
KANDIL_ATTN_TARGET inline void score_tile(const detail::FlashTask& t, const float* qf,
                                          const ops::BlockQ8_0* qb, const uint8_t* k0, int n) {
  int r0 = 0;
  for (; r0 + kMaxRowBlock <= t.rows; r0 += kMaxRowBlock) {
    score_block<KT, kMaxRowBlock>(t, qf, qb, r0, k0, n);
  }
  switch (t.rows - r0) {
    case 3:
      return score_block<KT, 3>(t, qf, qb, r0, k0, n);
    case 2:
      return score_block<KT, 2>(t, qf, qb, r0, k0, n);
    case 1:
      return score_block<KT, 1>(t, qf, qb, r0, k0, n);
    default:
      return;
  }
}

template <Kv KT>
KANDIL_ATTN_TARGET inline void accumulate_tile(const detail::FlashTask& t, const uint8_t* v0,
                                               int n) {
  int r0 = 0;
  for (; r0 + kMaxRowBlock <= t.rows; r0 += kMaxRowBlock) {
    accumulate_v_rows<KT, kMaxRowBlock>(t, r0, v0, n);
  }
  switch (t.rows - r0) {
    case 3:
      return accumulate_v_rows<KT, 3>(t, r0, v0, n);
    case 2:
      return accumulate_v_rows<KT, 2>(t, r0, v0, n);
    case 1:
      return accumulate_v_rows<KT, 1>(t, r0, v0, n);
    default:
      return;
  }
}

// Pads a tile's n scores with -inf up to whole vectors (their exp is 0); returns the padded count.
KANDIL_ATTN_TARGET inline int pad_scores(float* s, int n) {
  const int n_vec = (n + Simd::W - 1) / Simd::W * Simd::W;
  for (int j = n; j < n_vec; ++j) s[j] = -std::numeric_limits<float>::infinity();
  return n_vec;
}

// Online-softmax update of row r with the tile's n scores s: m' = max(m, max s), l = l *
// exp(m - m') + sum exp(s - m'). With `values`, s is overwritten with exp(s - m') and the
// accumulator rescaled by exp(m - m') (the flash path); without, only m and l advance (first pass
// of the F16 path).
KANDIL_ATTN_TARGET inline void softmax_update(const detail::FlashTask& t, int r, float* s, int n,
                                              bool values) {
  const int n_vec = pad_scores(s, n);
  Simd::F mx = Simd::load(s);
  for (int j = Simd::W; j < n_vec; j += Simd::W) mx = Simd::max(mx, Simd::load(s + j));
  const float m_old = t.m[r];
  const float m_new = std::max(m_old, Simd::hmax(mx));
  const Simd::F mv = Simd::set1(m_new);
  Simd::F sum = Simd::zero();
  for (int j = 0; j < n_vec; j += Simd::W) {
    const Simd::F p = Simd::exp(Simd::sub(Simd::load(s + j), mv));
    if (values) Simd::store(s + j, p);
    sum = Simd::add(sum, p);
  }
  const float corr = std::exp(m_old - m_new);  // 0 on the first tile (m_old = -inf)
  t.l[r] = t.l[r] * corr + Simd::hsum(sum);
  t.m[r] = m_new;
  if (values && corr != 1.0f) {
    const Simd::F cv = Simd::set1(corr);
    float* acc = t.acc + r * t.head_dim;
    for (int d = 0; d < t.head_dim; d += Simd::W) {
      Simd::store(acc + d, Simd::mul(Simd::load(acc + d), cv));
    }
  }
}

// Second pass of the F16 path: s <- f16(exp(s - M) * (1 / L)) with the row's final max M (t.m)
// and 1 / sum (t.l), the normalized weights llama.cpp rounds to F16 before multiplying with V.
KANDIL_ATTN_TARGET inline void normalized_weights(const detail::FlashTask& t, int r, float* s,
                                                  int n) {
  const int n_vec = pad_scores(s, n);
  const Simd::F mv = Simd::set1(t.m[r]), inv = Simd::set1(t.l[r]);
  for (int j = 0; j < n_vec; j += Simd::W) {
    const Simd::F p = Simd::exp(Simd::sub(Simd::load(s + j), mv));
    Simd::store(s + j, Simd::round_f16(Simd::mul(p, inv)));
  }
}

template <Kv KT>
KANDIL_ATTN_TARGET void flash(const detail::FlashTask& t) {
  using Phase = detail::FlashTask::Phase;
  const int hd = t.head_dim, rows = t.rows;
  const int n_q = rows * hd;  // the group's query rows are adjacent
  // Queries as the cache type's dot product expects them.
  const float* qf = t.q;
  const ops::BlockQ8_0* qb = nullptr;
  if constexpr (KT == Kv::F16) {
    float* buf = static_cast<float*>(t.qbuf);
    for (int i = 0; i < n_q; i += Simd::W) {
      Simd::store(buf + i, Simd::round_f16(Simd::load(t.q + i)));
    }
    qf = buf;
  } else if constexpr (KT == Kv::Q8_0) {
    t.quantize_q8_0(t.q, t.qbuf, n_q);
    qb = static_cast<const ops::BlockQ8_0*>(t.qbuf);
  }
  if (t.phase != Phase::weighted) {
    for (int r = 0; r < rows; ++r) {
      t.m[r] = -std::numeric_limits<float>::infinity();
      t.l[r] = 0.0f;
    }
  }
  if (t.phase != Phase::stats) {
    for (int i = 0; i < n_q; i += Simd::W) Simd::store(t.acc + i, Simd::zero());
  }

  if (t.phase == Phase::online) {
    for (int jt = t.j0; jt < t.j1; jt += kTile) {
      const int n = std::min(kTile, t.j1 - jt);
      score_tile<KT>(t, qf, qb, t.k + static_cast<size_t>(jt) * t.row_bytes, n);
      for (int r = 0; r < rows; ++r) softmax_update(t, r, t.scores + r * kTile, n, true);
      accumulate_tile<KT>(t, t.v + static_cast<size_t>(jt) * t.row_bytes, n);
    }
    return;
  }
  if (t.phase == Phase::stats || t.phase == Phase::stats_weighted) {
    for (int jt = t.j0; jt < t.j1; jt += kTile) {
      const int n = std::min(kTile, t.j1 - jt);
      score_tile<KT>(t, qf, qb, t.k + static_cast<size_t>(jt) * t.row_bytes, n);
      for (int r = 0; r < rows; ++r) softmax_update(t, r, t.scores + r * kTile, n, false);
    }
    if (t.phase == Phase::stats) return;
    for (int r = 0; r < rows; ++r) t.l[r] = 1.0f / t.l[r];
  }
  for (int jt = t.j0; jt < t.j1; jt += kTile) {
    const int n = std::min(kTile, t.j1 - jt);
    score_tile<KT>(t, qf, qb, t.k + static_cast<size_t>(jt) * t.row_bytes, n);
    for (int r = 0; r < rows; ++r) normalized_weights(t, r, t.scores + r * kTile, n);
    accumulate_tile<KT>(t, t.v + static_cast<size_t>(jt) * t.row_bytes, n);
  }
}

detail::FlashFn flash_for(TensorType kv_type) {
  switch (kv_type) {
    case TensorType::F32:
      return flash<Kv::F32>;
    case TensorType::F16:
      return flash<Kv::F16>;
    case TensorType::Q8_0:
      return flash<Kv::Q8_0>;
    default:
      return nullptr;
  }
}
