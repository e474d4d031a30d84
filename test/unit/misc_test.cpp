// Unit tests for the CSV generator, the latency histogram, deadlines and the error category.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "offerd/domain/csv.hpp"
#include "offerd/domain/deadline.hpp"
#include "offerd/domain/errors.hpp"
#include "offerd/domain/generator.hpp"
#include "offerd/domain/latency_histogram.hpp"

using namespace offerd;
using namespace std::chrono_literals;

namespace {

std::string generate(std::uint64_t rows, std::uint64_t seed, double malformed_share = 0.004) {
    generator_options opt;
    opt.rows = rows;
    opt.seed = seed;
    opt.malformed_share = malformed_share;
    std::ostringstream out;
    generate_csv(out, opt);
    return out.str();
}

// The generated file read back: the header's columns and each data record with its validation result.
struct parsed_csv {
    csv_columns cols;
    std::vector<csv_record> rows;
    std::vector<result<transaction>> txns;
};

parsed_csv read_generated(const std::string& text) {
    parsed_csv out;
    csv_reader reader(text);
    csv_record rec;
    failure error{errc::ok, ""};
    REQUIRE(reader.next(rec, error));
    auto cols = map_csv_header(rec.fields);
    REQUIRE(cols.has_value());
    out.cols = *cols;
    while (reader.next(rec, error)) {
        out.rows.push_back(rec);
        out.txns.push_back(csv_row_to_transaction(rec, out.cols));
    }
    REQUIRE(error.code == errc::ok);
    return out;
}

bool within(std::int64_t actual, double expected, double tolerance) {
    return std::abs(static_cast<double>(actual) - expected) <= expected * tolerance;
}

using clock_type = deadline::clock;
const clock_type::time_point t0 = clock_type::time_point{} + 1000h;

}  // namespace

// ---- generator ------------------------------------------------------------------------------

TEST_CASE("The generator writes the same bytes for the same seed", "[unit]") {
    const std::string a = generate(500, 7);
    CHECK(a.size() > 500 * 20);
    CHECK(a == generate(500, 7));
}

TEST_CASE("The generator writes different bytes for a different seed", "[unit]") {
    CHECK(generate(500, 7) != generate(500, 8));
}

TEST_CASE("The generator starts with the contract header", "[unit]") {
    const std::string text = generate(10, 42);
    CHECK(text.substr(0, text.find('\n')) ==
          "memberId,lastTransactionUtcTs,lastTransactionType,lastTransactionPointsBought,lastTransactionRevenueUSD");
}

TEST_CASE("The generator writes one line per requested row after the header", "[unit]") {
    for (const std::uint64_t rows : {0, 1, 37, 1000}) {
        INFO(rows);
        const std::string text = generate(rows, 3);
        CHECK(static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n')) == rows + 1);
        CHECK(read_generated(text).rows.size() == rows);
    }
}

TEST_CASE("Generated rows use mostly lowercase types", "[unit]") {
    const auto csv = read_generated(generate(2000, 42, 0));
    std::map<std::string, int> spelled;
    for (const auto& r : csv.rows) ++spelled[r.fields[csv.cols.index[2]]];
    CHECK(spelled["buy"] > 0);
    CHECK(spelled["gift"] > 0);
    CHECK(spelled["redeem"] > 0);
    CHECK(spelled["buy"] + spelled["gift"] + spelled["redeem"] > 2000 / 2);
}

TEST_CASE("Generated redeems have negative points and zero revenue", "[unit]") {
    const auto csv = read_generated(generate(2000, 42, 0));
    int redeems = 0;
    for (const auto& t : csv.txns) {
        REQUIRE(t.has_value());
        if (t->type != txn_type::redeem) continue;
        ++redeems;
        CHECK(t->points < 0);
        CHECK(t->revenue == 0);
    }
    CHECK(redeems > 0);
}

TEST_CASE("Generated buys and gifts have positive points and non-negative revenue", "[unit]") {
    const auto csv = read_generated(generate(2000, 42, 0));
    for (const auto& t : csv.txns) {
        REQUIRE(t.has_value());
        if (t->type == txn_type::redeem) continue;
        CHECK(t->points > 0);
        CHECK(t->revenue >= 0);
    }
}

TEST_CASE("Without malformed rows every generated row validates", "[unit]") {
    const auto csv = read_generated(generate(3000, 11, 0));
    for (std::size_t i = 0; i < csv.txns.size(); ++i) {
        INFO("line " << csv.rows[i].line << ": " << (csv.txns[i] ? "" : csv.txns[i].error().detail));
        CHECK(csv.txns[i].has_value());
    }
}

TEST_CASE("The default generator output has some malformed rows that validation rejects", "[unit]") {
    const auto csv = read_generated(generate(5000, 42));
    std::size_t rejected = 0;
    for (const auto& t : csv.txns) rejected += t.has_value() ? 0 : 1;
    CHECK(rejected > 0);
    CHECK(rejected < 5000 / 20);
}

TEST_CASE("Generated members repeat", "[unit]") {
    const auto csv = read_generated(generate(2000, 42, 0));
    std::map<std::string, int> per_member;
    for (const auto& t : csv.txns) {
        REQUIRE(t.has_value());
        ++per_member[t->member_id];
    }
    CHECK(per_member.size() < csv.txns.size() / 2);
    int most = 0;
    for (const auto& [id, n] : per_member) most = std::max(most, n);
    CHECK(most >= 5);
}

TEST_CASE("Generated timestamps include out-of-order arrivals", "[unit]") {
    const auto csv = read_generated(generate(5000, 42, 0));
    int backwards = 0;
    for (std::size_t i = 1; i < csv.txns.size(); ++i) backwards += csv.txns[i]->ts < csv.txns[i - 1]->ts ? 1 : 0;
    CHECK(backwards > 0);
    CHECK(backwards < 5000 / 10);
}

TEST_CASE("Generated timestamps include occasional ties", "[unit]") {
    const auto csv = read_generated(generate(5000, 42, 0));
    std::set<micros> distinct;
    for (const auto& t : csv.txns) distinct.insert(t->ts);
    CHECK(distinct.size() < csv.txns.size());
}

// ---- latency_histogram ----------------------------------------------------------------------

TEST_CASE("An empty histogram reports zero for every percentile", "[unit]") {
    const latency_histogram h;
    CHECK(h.count() == 0);
    CHECK(h.max() == 0);
    CHECK(h.percentile(0.5) == 0);
    CHECK(h.percentile(0.99) == 0);
    CHECK(h.percentile(1.0) == 0);
}

TEST_CASE("Percentiles of a uniform distribution are within 7 percent", "[unit]") {
    latency_histogram h;
    for (std::int64_t us = 1; us <= 10000; ++us) h.record(us);
    CHECK(h.count() == 10000);
    CHECK(within(h.percentile(0.5), 5000, 0.07));
    CHECK(within(h.percentile(0.9), 9000, 0.07));
    CHECK(within(h.percentile(0.99), 9900, 0.07));
    CHECK(within(h.percentile(0.999), 9990, 0.07));
}

TEST_CASE("Percentiles of a bimodal distribution land in the right mode", "[unit]") {
    latency_histogram h;
    for (int i = 0; i < 900; ++i) h.record(2000);
    for (int i = 0; i < 100; ++i) h.record(150000);
    CHECK(within(h.percentile(0.5), 2000, 0.07));
    CHECK(within(h.percentile(0.9), 2000, 0.07));
    CHECK(within(h.percentile(0.95), 150000, 0.07));
    CHECK(within(h.percentile(0.99), 150000, 0.07));
}

TEST_CASE("Percentiles of a wide geometric distribution are within 7 percent", "[unit]") {
    latency_histogram h;
    std::vector<std::int64_t> values;
    for (double v = 10; v < 5e9; v *= 1.01) values.push_back(static_cast<std::int64_t>(v));
    for (const auto v : values) h.record(v);
    for (const double q : {0.1, 0.25, 0.5, 0.75, 0.9, 0.99}) {
        INFO(q);
        const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
        CHECK(within(h.percentile(q), static_cast<double>(values[rank - 1]), 0.07));
    }
}

TEST_CASE("The histogram keeps the exact maximum", "[unit]") {
    latency_histogram h;
    for (const std::int64_t us : {5, 123457, 999, 123456}) h.record(us);
    CHECK(h.max() == 123457);
    CHECK(h.percentile(1.0) == 123457);
}

TEST_CASE("A percentile never exceeds the maximum", "[unit]") {
    latency_histogram h;
    h.record(1000001);
    CHECK(h.percentile(0.5) <= 1000001);
    CHECK(within(h.percentile(0.5), 1000001, 0.07));
}

TEST_CASE("Small latencies are counted exactly", "[unit]") {
    latency_histogram h;
    for (std::int64_t us = 0; us < 16; ++us) h.record(us);
    CHECK(h.percentile(0.5) == 7);
    CHECK(h.percentile(1.0) == 15);
}

TEST_CASE("Huge latencies saturate without losing the maximum", "[unit]") {
    latency_histogram h;
    h.record(std::int64_t{1} << 50);
    h.record(10);
    CHECK(h.count() == 2);
    CHECK(h.max() == std::int64_t{1} << 50);
    // The last bucket starts at 2^40 us; its percentile is clamped to the exact maximum.
    CHECK(h.percentile(1.0) >= std::int64_t{1} << 40);
    CHECK(h.percentile(1.0) <= h.max());
    CHECK(h.percentile(0.5) == 10);
}

TEST_CASE("Merging histograms equals recording everything in one", "[unit]") {
    latency_histogram a, b, all;
    for (std::int64_t us = 1; us <= 3000; us += 3) {
        a.record(us);
        all.record(us);
    }
    for (std::int64_t us = 5000; us <= 9000; us += 7) {
        b.record(us);
        all.record(us);
    }
    a.merge(b);
    CHECK(a.count() == all.count());
    CHECK(a.max() == all.max());
    for (const double q : {0.1, 0.5, 0.9, 0.99, 1.0}) {
        INFO(q);
        CHECK(a.percentile(q) == all.percentile(q));
    }
}

TEST_CASE("Reset empties the histogram", "[unit]") {
    latency_histogram h;
    h.record(500);
    h.reset();
    CHECK(h.count() == 0);
    CHECK(h.max() == 0);
    CHECK(h.percentile(0.5) == 0);
}

// ---- deadline -------------------------------------------------------------------------------

TEST_CASE("A default deadline never expires and never shortens a call", "[unit]") {
    const deadline d;
    CHECK_FALSE(d.expired(t0));
    CHECK_FALSE(d.expired(clock_type::time_point::max() - 1h));
    CHECK(d.remaining(t0) == clock_type::duration::max());
    CHECK(d.budget(2s, t0) == clock_type::duration(2s));
}

TEST_CASE("The budget is the per-call limit when more time is left", "[unit]") {
    const auto d = deadline::after(10s, t0);
    CHECK(d.at() == t0 + 10s);
    CHECK(d.remaining(t0 + 1s) == clock_type::duration(9s));
    CHECK(d.budget(2s, t0 + 1s) == clock_type::duration(2s));
}

TEST_CASE("The budget is the time left when it is less than the per-call limit", "[unit]") {
    const auto d = deadline::after(1s, t0);
    CHECK(d.budget(2s, t0 + 400ms) == clock_type::duration(600ms));
    CHECK_FALSE(d.expired(t0 + 400ms));
}

TEST_CASE("A passed deadline has zero budget and zero time left, never negative", "[unit]") {
    const auto d = deadline::after(1s, t0);
    CHECK(d.expired(t0 + 1s));
    CHECK(d.expired(t0 + 5s));
    CHECK(d.remaining(t0 + 5s) == clock_type::duration::zero());
    CHECK(d.budget(2s, t0 + 5s) == clock_type::duration::zero());
    CHECK(d.budget(2s, t0 + 1s) == clock_type::duration::zero());
}

TEST_CASE("A negative per-call limit gives a zero budget", "[unit]") {
    CHECK(deadline::after(1s, t0).budget(-1s, t0) == clock_type::duration::zero());
    CHECK(deadline{}.budget(-1s, t0) == clock_type::duration::zero());
}

// ---- errors ---------------------------------------------------------------------------------

TEST_CASE("Every error code has a distinct snake_case name", "[unit]") {
    const std::map<errc, std::string> expected{
        {errc::ok, "ok"},
        {errc::bad_json, "bad_json"},
        {errc::invalid_field, "invalid_field"},
        {errc::body_too_large, "body_too_large"},
        {errc::header_too_large, "header_too_large"},
        {errc::not_found, "not_found"},
        {errc::method_not_allowed, "method_not_allowed"},
        {errc::overloaded, "overloaded"},
        {errc::member_busy, "member_busy"},
        {errc::circuit_open, "circuit_open"},
        {errc::writes_pending, "writes_pending"},
        {errc::state_unavailable, "state_unavailable"},
        {errc::idempotency_conflict, "idempotency_conflict"},
        {errc::deadline_exceeded, "deadline_exceeded"},
        {errc::upstream_timeout, "upstream_timeout"},
        {errc::upstream_unavailable, "upstream_unavailable"},
        {errc::upstream_bad_status, "upstream_bad_status"},
        {errc::upstream_bad_response, "upstream_bad_response"},
        {errc::internal, "internal"},
    };
    std::set<std::string> seen;
    for (const auto& [code, name] : expected) {
        CHECK(std::string(errc_name(code)) == name);
        seen.insert(errc_name(code));
    }
    CHECK(seen.size() == expected.size());
}

TEST_CASE("An errc converts to a std::error_code in the offerd category", "[unit]") {
    const std::error_code ec = errc::upstream_timeout;
    CHECK(ec);
    CHECK(std::string(ec.category().name()) == "offerd");
    CHECK(ec.category() == offerd_category());
    CHECK(ec.message() == "upstream_timeout");
    CHECK(ec == make_error_code(errc::upstream_timeout));
    CHECK(ec != make_error_code(errc::upstream_unavailable));
}

TEST_CASE("errc::ok is the no-error value", "[unit]") {
    const std::error_code ec = errc::ok;
    CHECK_FALSE(ec);
}

TEST_CASE("The category message names the error", "[unit]") {
    CHECK(offerd_category().message(static_cast<int>(errc::bad_json)) == "bad_json");
    CHECK(offerd_category().message(static_cast<int>(errc::internal)) == "internal");
}

TEST_CASE("A result holds either a value or a failure", "[unit]") {
    const result<int> good = 42;
    REQUIRE(good.has_value());
    CHECK(*good == 42);
    const result<int> bad = fail(errc::not_found, "no such member");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == errc::not_found);
    CHECK(bad.error().detail == "no such member");
}
