// Deterministic generator of realistic member transaction CSVs (the repo's member_data.csv).
#pragma once

#include <cstdint>
#include <ostream>

namespace offerd {

struct generator_options {
    static constexpr std::uint64_t max_rows = 100'000'000;    // about 5 GB of CSV
    static constexpr std::uint64_t max_members = 20'000'000;  // the generator keeps 8 bytes per member
    std::uint64_t rows = 5000;
    std::uint64_t seed = 42;
    std::uint64_t members = 0;         // 0: about rows / 5 distinct members
    double malformed_share = 0.004;    // share of deliberately malformed rows
};

// Writes a header and `rows` data rows. Same seed, same bytes, on every platform (own PRNG and
// own distributions; std:: distributions are implementation-defined). Repeat members follow a
// skewed popularity; types are mostly lowercase; redeems have negative points and zero revenue;
// timestamps move forward with occasional ties and out-of-order arrivals; a few rows are malformed.
// Rows and members above their maxima are clamped to them (the CLI refuses such values).
void generate_csv(std::ostream& out, const generator_options& opt);

}  // namespace offerd
