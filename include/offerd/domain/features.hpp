// The 8 model features, the two prediction formulas and the offer rule. Pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "offerd/domain/transaction.hpp"

namespace offerd {

struct member_features {
    double avg_points_bought = 0;
    double avg_revenue_usd = 0;
    double last_3_avg_points_bought = 0;
    double last_3_avg_revenue_usd = 0;
    double pct_buy = 0;
    double pct_gift = 0;
    double pct_redeem = 0;
    std::int64_t days_since_last_transaction = 0;

    friend bool operator==(const member_features&, const member_features&) = default;
};

// Features over history (in arrival order) plus the current transaction, which arrives last.
// LAST_3 takes the 3 most recent by timestamp; on equal timestamps the later arrival is more
// recent. DAYS_SINCE is the UTC calendar date of `now` minus that of the latest transaction,
// never negative. Sums run in arrival order so results match a straightforward reference.
member_features compute_features(std::span<const transaction> history, const transaction& current, micros now);

// abs((LAST_3_AVG_POINTS*0.7 + AVG_POINTS*0.3) * max(0, PCT_BUY + PCT_GIFT - PCT_REDEEM))
double predict_ats(const member_features& f) noexcept;

// min(0.9, 1000 * (PCT_BUY*0.4 + PCT_GIFT*0.3 + PCT_REDEEM*0.3)
//          * ((AVG_REVENUE*0.3 + LAST_3_AVG_REVENUE*0.7) / 100) * (1 / (DAYS_SINCE + 1)))
double predict_resp(const member_features& f) noexcept;

inline constexpr std::string_view offer_discount = "50% Discount";
inline constexpr std::string_view offer_bonus = "35% Bonus";
inline constexpr double offer_threshold = 200.0;

// "50% Discount" when ats * resp >= 200, else "35% Bonus".
std::string_view assign_offer(double ats, double resp) noexcept;

}  // namespace offerd
