// A fixed-size log-linear histogram of microsecond latencies with percentile queries (±6%).
#pragma once

#include <array>
#include <cstdint>

namespace offerd {

class latency_histogram {
public:
    // 16 linear sub-buckets per power of two up to 2^40 µs (12 days); larger values saturate.
    static constexpr int sub_bits = 4;
    static constexpr int buckets = (40 - sub_bits + 1) * (1 << sub_bits) + (1 << sub_bits);

    void record(std::int64_t us) noexcept;
    void merge(const latency_histogram& other) noexcept;
    void reset() noexcept { *this = latency_histogram{}; }

    std::uint64_t count() const noexcept { return count_; }
    std::int64_t max() const noexcept { return max_; }
    // Upper bound of the bucket holding the q-quantile (0 < q <= 1), clamped to max(); 0 if empty.
    std::int64_t percentile(double q) const noexcept;

    static int bucket_of(std::int64_t us) noexcept;
    static std::int64_t bucket_upper(int b) noexcept;

private:
    std::array<std::uint32_t, buckets> counts_{};
    std::uint64_t count_ = 0;
    std::int64_t max_ = 0;
};

}  // namespace offerd
