// Log-linear latency histogram.
#include "offerd/domain/latency_histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace offerd {

int latency_histogram::bucket_of(std::int64_t us) noexcept {
    if (us < 0) us = 0;
    const auto v = static_cast<std::uint64_t>(us);
    constexpr std::uint64_t linear = 1u << sub_bits;
    if (v < linear) return static_cast<int>(v);
    const int e = static_cast<int>(std::bit_width(v)) - 1;  // v in [2^e, 2^(e+1))
    if (e > 40) return buckets - 1;
    const auto sub = static_cast<int>((v >> (e - sub_bits)) & (linear - 1));
    return std::min(buckets - 1, (e - sub_bits + 1) * static_cast<int>(linear) + sub);
}

std::int64_t latency_histogram::bucket_upper(int b) noexcept {
    constexpr int linear = 1 << sub_bits;
    if (b < linear) return b;
    const int e = b / linear + sub_bits - 1;
    const int sub = b % linear;
    return ((static_cast<std::int64_t>(linear + sub + 1)) << (e - sub_bits)) - 1;
}

void latency_histogram::record(std::int64_t us) noexcept {
    ++counts_[static_cast<std::size_t>(bucket_of(us))];
    ++count_;
    max_ = std::max(max_, us);
}

void latency_histogram::merge(const latency_histogram& other) noexcept {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
}

std::int64_t latency_histogram::percentile(double q) const noexcept {
    if (count_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    std::uint64_t seen = 0;
    for (int b = 0; b < buckets; ++b) {
        seen += counts_[static_cast<std::size_t>(b)];
        if (seen >= std::max<std::uint64_t>(rank, 1)) return std::min(bucket_upper(b), max_);
    }
    return max_;
}

}  // namespace offerd
