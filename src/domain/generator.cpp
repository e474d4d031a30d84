// CSV generator: splitmix64 PRNG and hand-written distributions so output is reproducible everywhere.
#include "offerd/domain/generator.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "offerd/domain/timestamp.hpp"

namespace offerd {

namespace {

class rng {
public:
    explicit rng(std::uint64_t seed) : s_(seed) {}
    std::uint64_t next() noexcept {
        std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    std::uint64_t below(std::uint64_t n) noexcept { return n == 0 ? 0 : next() % n; }

private:
    std::uint64_t s_;
};

std::string money(double v) {
    std::array<char, 32> buf{};
    const int n = std::snprintf(buf.data(), buf.size(), "%.2f", v);
    return std::string(buf.data(), static_cast<std::size_t>(n));
}

// Space-separated UTC form most rows use; a minority use RFC 3339 with Z.
std::string timestamp_text(micros t, bool rfc3339) {
    std::string s = format_rfc3339(t - t % micros_per_second);
    if (!rfc3339) {
        s[10] = ' ';
        s.pop_back();
    }
    return s;
}

}  // namespace

void generate_csv(std::ostream& out, const generator_options& opt) {
    rng r(opt.seed);
    const std::uint64_t rows = std::min(opt.rows, generator_options::max_rows);
    const std::uint64_t members = std::min(opt.members ? opt.members : std::max<std::uint64_t>(1, rows / 5), generator_options::max_members);
    micros clock = days_from_civil(2024, 1, 1) * micros_per_day;
    const micros span = 365 * micros_per_day;
    const micros step = std::max<micros>(micros_per_second, span / static_cast<micros>(std::max<std::uint64_t>(1, rows)));

    std::vector<micros> last_ts(members + 1, 0);
    out << "memberId,lastTransactionUtcTs,lastTransactionType,lastTransactionPointsBought,lastTransactionRevenueUSD\n";
    for (std::uint64_t i = 0; i < rows; ++i) {
        // Skewed popularity: squaring a uniform favours low member numbers.
        const double u = r.uniform();
        const auto member = static_cast<std::uint64_t>(u * u * static_cast<double>(members));
        std::string id = "M" + std::to_string(100000 + member);

        const double roll = r.uniform();
        clock += static_cast<micros>(r.below(static_cast<std::uint64_t>(2 * step)));
        micros ts = clock;
        if (roll < 0.02) ts -= static_cast<micros>(r.below(30)) * micros_per_day;  // late arrival
        if (roll > 0.985 && last_ts[member] != 0) ts = last_ts[member];           // same second as the member's last
        last_ts[member] = ts;

        const double kind = r.uniform();
        std::string type;
        double points = 0, revenue = 0;
        if (kind < 0.6) {
            type = "buy";
            revenue = std::round((5 + r.uniform() * 295) * 100) / 100;
            points = std::round(revenue * (8 + r.uniform() * 4));
        } else if (kind < 0.8) {
            type = "gift";
            points = static_cast<double>(50 + r.below(20) * 25);
            revenue = std::round(r.uniform() * 5000) / 100;
        } else {
            type = "redeem";
            points = -static_cast<double>(100 + r.below(40) * 50);
        }
        const double casing = r.uniform();
        if (casing < 0.05) {
            for (char& c : type) c = static_cast<char>(c - 'a' + 'A');
        } else if (casing < 0.08) {
            type[0] = static_cast<char>(type[0] - 'a' + 'A');
        }
        std::string ts_text = timestamp_text(ts, r.uniform() < 0.1);
        std::string points_text = std::to_string(static_cast<long long>(points));
        std::string revenue_text = money(revenue);

        if (r.uniform() < opt.malformed_share) {
            switch (r.below(6)) {
            case 0: ts_text = "not-a-date"; break;
            case 1: type = "refund"; break;
            case 2: points_text = "abc"; break;
            case 3: id.clear(); break;
            case 4: revenue_text = "-12.50"; break;
            default: out << id << ',' << ts_text << ',' << type << '\n'; continue;  // too few fields
            }
        }
        out << id << ',' << ts_text << ',' << type << ',' << points_text << ',' << revenue_text << '\n';
    }
}

}  // namespace offerd
