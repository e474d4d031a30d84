// Feature computation and the model formulas, written to mirror the contract's expressions.
#include "offerd/domain/features.hpp"

#include <algorithm>
#include <array>
#include <cmath>

namespace offerd {

namespace {
// sum / n as the contract's reference computes it; when the sum of finite values overflowed
// (values near DBL_MAX) the mean of value / n instead, which cannot, so valid inputs always give
// finite features. Normal inputs get the plain sum's exact result.
template <class Value>
double safe_mean(double sum, std::size_t n, Value value) {
    const auto dn = static_cast<double>(n);
    if (std::isfinite(sum)) return sum / dn;
    double mean = 0;
    for (std::size_t i = 0; i < n; ++i) mean += value(i) / dn;
    return mean;
}
}  // namespace

member_features compute_features(std::span<const transaction> history, const transaction& current, micros now) {
    const std::size_t n = history.size() + 1;
    const auto at = [&](std::size_t i) -> const transaction& { return i < history.size() ? history[i] : current; };

    double sum_points = 0, sum_revenue = 0;
    std::array<std::size_t, 3> type_count{};
    micros latest = at(0).ts;
    // The 3 most recent as arrival indices, most recent first. A later arrival with an equal
    // timestamp is more recent, so ">=" lets it displace an earlier one.
    std::array<std::size_t, 3> top{};
    std::size_t top_n = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const transaction& t = at(i);
        sum_points += t.points;
        sum_revenue += t.revenue;
        ++type_count[static_cast<std::size_t>(t.type)];
        latest = std::max(latest, t.ts);
        std::size_t pos = top_n;
        while (pos > 0 && t.ts >= at(top[pos - 1]).ts) --pos;
        if (pos < 3) {
            for (std::size_t k = std::min<std::size_t>(top_n, 2); k > pos; --k) top[k] = top[k - 1];
            top[pos] = i;
            top_n = std::min<std::size_t>(top_n + 1, 3);
        }
    }
    double l3_points = 0, l3_revenue = 0;
    for (std::size_t k = 0; k < top_n; ++k) {
        l3_points += at(top[k]).points;
        l3_revenue += at(top[k]).revenue;
    }
    const auto dn = static_cast<double>(n);
    member_features f;
    f.avg_points_bought = safe_mean(sum_points, n, [&](std::size_t i) { return at(i).points; });
    f.avg_revenue_usd = safe_mean(sum_revenue, n, [&](std::size_t i) { return at(i).revenue; });
    f.last_3_avg_points_bought = safe_mean(l3_points, top_n, [&](std::size_t k) { return at(top[k]).points; });
    f.last_3_avg_revenue_usd = safe_mean(l3_revenue, top_n, [&](std::size_t k) { return at(top[k]).revenue; });
    f.pct_buy = static_cast<double>(type_count[0]) / dn;
    f.pct_gift = static_cast<double>(type_count[1]) / dn;
    f.pct_redeem = static_cast<double>(type_count[2]) / dn;
    f.days_since_last_transaction = std::max<std::int64_t>(0, utc_day(now) - utc_day(latest));
    return f;
}

double predict_ats(const member_features& f) noexcept {
    return std::abs((f.last_3_avg_points_bought * 0.7 + f.avg_points_bought * 0.3) *
                    std::max(0.0, f.pct_buy + f.pct_gift - f.pct_redeem));
}

double predict_resp(const member_features& f) noexcept {
    return std::min(0.9, 1000 * (f.pct_buy * 0.4 + f.pct_gift * 0.3 + f.pct_redeem * 0.3) *
                             ((f.avg_revenue_usd * 0.3 + f.last_3_avg_revenue_usd * 0.7) / 100) *
                             (1 / (static_cast<double>(f.days_since_last_transaction) + 1)));
}

std::string_view assign_offer(double ats, double resp) noexcept {
    return ats * resp >= offer_threshold ? offer_discount : offer_bonus;
}

}  // namespace offerd
