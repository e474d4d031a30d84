// The orchestrator config's one validation pass.
#include "offerd/orchestrator/config.hpp"

#include <string>

namespace offerd {

namespace {
// "--flag: must be lo..hi, got v": the flag names are the CLI's, which is where users meet them.
template <class T>
std::optional<failure> out_of_range(const char* flag, T v, T lo, T hi) {
    if (v >= lo && v <= hi) return std::nullopt;
    const auto str = [](T x) {
        if constexpr (std::is_floating_point_v<T>) return std::to_string(x);
        else return std::to_string(x);
    };
    return fail(errc::invalid_field, std::string(flag) + ": must be " + str(lo) + ".." + str(hi) + ", got " + str(v));
}
std::optional<failure> ms_range(const char* flag, std::chrono::milliseconds v, std::int64_t lo, std::int64_t hi) {
    return out_of_range<std::int64_t>(flag, v.count(), lo, hi);
}
}  // namespace

result<std::monostate> validate(const orchestrator_config& c) {
    constexpr std::int64_t day = 86'400'000;  // the CLI's bound of every duration flag
    for (auto err : {ms_range("--upstream-timeout-ms", c.upstream.timeout, 1, day),
                     ms_range("--request-deadline-ms", c.request_deadline, 1, day),
                     ms_range("--idempotency-retention-ms", c.idempotency_retention, 1, 7 * day),
                     ms_range("--member-cache-ms", c.members.idle, 0, 7 * day),
                     ms_range("outbox retry_min", c.outbox.retry_min, 1, day),
                     ms_range("outbox retry_max", c.outbox.retry_max, c.outbox.retry_min.count(), day),
                     out_of_range<std::size_t>("--max-in-flight", c.admission.max_in_flight, 1, 10'000'000),
                     out_of_range<std::int64_t>("--admission-target-us", c.admission.target.count(), 0, 1'000'000),
                     out_of_range<std::size_t>("--admission-min-limit", c.admission.min_limit, 1, 10'000'000),
                     ms_range("admission interval", c.admission.interval, 1, day),
                     out_of_range<std::size_t>("--pool-size", c.upstream.max_idle, 0, 100'000),
                     out_of_range<std::size_t>("--member-cache-transactions", c.members.max_transactions, 0, 1'000'000'000),
                     out_of_range<std::size_t>("outbox max_items", c.outbox.max_items, 1, 1'000'000'000),
                     out_of_range<std::size_t>("idempotency capacity", c.idempotency_capacity, 16, 100'000'000),
                     out_of_range("--max-attempts", c.retry.max_attempts, 1, 10),
                     out_of_range("--retry-budget", c.retry.budget_ratio, 0.0, 1.0)})
        if (err) return *err;
    if (!c.state_url.empty() && !c.state_url.starts_with("postgresql://") && !c.state_url.starts_with("postgres://"))
        return fail(errc::invalid_field, "--state-url: must be a postgresql:// URL, got '" + c.state_url + "'");
    return std::monostate{};
}

}  // namespace offerd
