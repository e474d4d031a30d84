// Unit tests for the JSON wire codecs and the JSON writer. JSON is compared parsed, except where
// the exact text (number format, escaping) is the behaviour under test.
#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "offerd/codec/json_writer.hpp"
#include "offerd/codec/wire.hpp"

using namespace offerd;
namespace json = boost::json;

namespace {

constexpr micros noon_2024_03_01 = (1704067200LL + 60LL * 86400 + 12LL * 3600) * micros_per_second;

json::value parse(std::string_view text) {
    INFO("json: " << text);
    json::error_code ec;
    json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
    REQUIRE_FALSE(ec);
    return v;
}

bool starts_with(const std::string& s, std::string_view prefix) { return std::string_view(s).starts_with(prefix); }
bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

json::object valid_txn_object() {
    return json::object{{"memberId", "M1"},
                        {"lastTransactionUtcTs", "2024-03-01T12:00:00Z"},
                        {"lastTransactionType", "BUY"},
                        {"lastTransactionPointsBought", 120},
                        {"lastTransactionRevenueUsd", 12.5}};
}

std::string text_of(const json::value& v) { return json::serialize(v); }

// The detail of a failed decode_transaction, after checking it failed with invalid_field.
std::string invalid_field_detail(const std::string& body) {
    INFO("body: " << body);
    const auto r = decode_transaction(body);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    return r.error().detail;
}

std::string with(std::string_view key, json::value v) {
    json::object o = valid_txn_object();
    o[key] = std::move(v);
    return text_of(o);
}

std::string without(std::string_view key) {
    json::object o = valid_txn_object();
    o.erase(key);
    return text_of(o);
}

std::string json_string(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

std::string json_number(double d) {
    std::string out;
    append_json_number(out, d);
    return out;
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
        return k < s.size() && at(k) >= lo && at(k) <= hi;
    };
    while (i < s.size()) {
        const unsigned c = at(i);
        if (c < 0x80) { i += 1; continue; }
        if (c >= 0xC2 && c <= 0xDF && cont(i + 1)) { i += 2; continue; }
        if (c == 0xE0 && cont(i + 1, 0xA0) && cont(i + 2)) { i += 3; continue; }
        if (((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) && cont(i + 1) && cont(i + 2)) { i += 3; continue; }
        if (c == 0xED && cont(i + 1, 0x80, 0x9F) && cont(i + 2)) { i += 3; continue; }
        if (c == 0xF0 && cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3)) { i += 4; continue; }
        if (c >= 0xF1 && c <= 0xF3 && cont(i + 1) && cont(i + 2) && cont(i + 3)) { i += 4; continue; }
        if (c == 0xF4 && cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3)) { i += 4; continue; }
        return false;
    }
    return true;
}

// The written string literal decodes (Boost.JSON rejects invalid UTF-8) to valid UTF-8.
std::string decoded_string_literal(std::string_view raw) {
    const std::string literal = json_string(raw);
    INFO("literal bytes: " << literal.size());
    CHECK(valid_utf8(literal));
    const json::value v = parse(literal);
    REQUIRE(v.is_string());
    return std::string(v.as_string().data(), v.as_string().size());
}

member_features sample_features() {
    member_features f;
    f.avg_points_bought = 1234.0 / 3;
    f.avg_revenue_usd = 0.1;
    f.last_3_avg_points_bought = -2.0 / 3;
    f.last_3_avg_revenue_usd = 123.456;
    f.pct_buy = 1.0 / 7;
    f.pct_gift = 2.0 / 7;
    f.pct_redeem = 4.0 / 7;
    f.days_since_last_transaction = 12;
    return f;
}

std::string features_with(std::string_view key, json::value v) {
    json::value o = parse(encode_features(sample_features()));
    o.as_object()[key] = std::move(v);
    return text_of(o);
}

}  // namespace

// ---- decode_transaction ---------------------------------------------------------------------

TEST_CASE("A valid transaction body decodes to a transaction", "[unit]") {
    const auto r = decode_transaction(
        R"({"memberId":"M1","lastTransactionUtcTs":"2024-03-01T12:00:00Z","lastTransactionType":"BUY",)"
        R"("lastTransactionPointsBought":120,"lastTransactionRevenueUsd":12.5})");
    REQUIRE(r.has_value());
    CHECK(*r == transaction{"M1", noon_2024_03_01, txn_type::buy, 120, 12.5});
}

TEST_CASE("Integer and fractional JSON numbers are both accepted", "[unit]") {
    const auto a = decode_transaction(with("lastTransactionPointsBought", 120.75));
    REQUIRE(a.has_value());
    CHECK(a->points == 120.75);
    const auto b = decode_transaction(with("lastTransactionRevenueUsd", 12));
    REQUIRE(b.has_value());
    CHECK(b->revenue == 12);
    const auto c = decode_transaction(
        R"({"memberId":"M1","lastTransactionUtcTs":"2024-03-01T12:00:00Z","lastTransactionType":"BUY",)"
        R"("lastTransactionPointsBought":1.5e2,"lastTransactionRevenueUsd":0})");
    REQUIRE(c.has_value());
    CHECK(c->points == 150);
    CHECK(c->revenue == 0);
}

TEST_CASE("Extra keys in a transaction body are tolerated", "[unit]") {
    json::object o = valid_txn_object();
    o["note"] = "hello";
    o["nested"] = json::object{{"a", json::array{1, 2}}};
    o["lastTransactionRevenueUSD"] = "ignored";
    const auto r = decode_transaction(text_of(o));
    REQUIRE(r.has_value());
    CHECK(r->revenue == 12.5);
}

TEST_CASE("A body that is not JSON fails with bad_json", "[unit]") {
    for (const char* body : {"", "not json", "{", R"({"memberId":})", "{} {}", "[1,]", "{'a':1}", "nul"}) {
        INFO("body: " << body);
        const auto r = decode_transaction(body);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::bad_json);
    }
}

TEST_CASE("A JSON body that is not an object fails with invalid_field", "[unit]") {
    for (const char* body : {"[]", "42", "\"M1\"", "null", "true", "[{}]"}) {
        INFO("body: " << body);
        const auto r = decode_transaction(body);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::invalid_field);
    }
}

TEST_CASE("A missing transaction field is named", "[unit]") {
    for (const char* key : {"memberId", "lastTransactionUtcTs", "lastTransactionType", "lastTransactionPointsBought",
                            "lastTransactionRevenueUsd"}) {
        INFO(key);
        CHECK(starts_with(invalid_field_detail(without(key)), std::string(key) + ": "));
    }
}

TEST_CASE("A transaction field of the wrong JSON type is named", "[unit]") {
    CHECK(starts_with(invalid_field_detail(with("lastTransactionPointsBought", "120")), "lastTransactionPointsBought: "));
    CHECK(starts_with(invalid_field_detail(with("memberId", 123)), "memberId: "));
    CHECK(starts_with(invalid_field_detail(with("lastTransactionRevenueUsd", true)), "lastTransactionRevenueUsd: "));
    CHECK(starts_with(invalid_field_detail(with("lastTransactionUtcTs", 1709294400)), "lastTransactionUtcTs: "));
    CHECK(starts_with(invalid_field_detail(with("lastTransactionType", nullptr)), "lastTransactionType: "));
    CHECK(starts_with(invalid_field_detail(with("lastTransactionPointsBought", json::array{1})),
                      "lastTransactionPointsBought: "));
    CHECK(starts_with(invalid_field_detail(with("memberId", json::object{})), "memberId: "));
}

TEST_CASE("An invalid member id is named", "[unit]") {
    CHECK(starts_with(invalid_field_detail(with("memberId", "M 1")), "memberId: "));
    CHECK(starts_with(invalid_field_detail(with("memberId", "")), "memberId: "));
    CHECK(starts_with(invalid_field_detail(with("memberId", std::string(65, 'a').c_str())), "memberId: "));
}

TEST_CASE("An invalid timestamp is named", "[unit]") {
    CHECK(starts_with(invalid_field_detail(with("lastTransactionUtcTs", "2023-02-29T12:00:00Z")),
                      "lastTransactionUtcTs: "));
    CHECK(starts_with(invalid_field_detail(with("lastTransactionUtcTs", "yesterday")), "lastTransactionUtcTs: "));
}

TEST_CASE("An unknown transaction type is named", "[unit]") {
    CHECK(starts_with(invalid_field_detail(with("lastTransactionType", "REFUND")), "lastTransactionType: "));
}

TEST_CASE("Negative revenue is rejected naming the revenue field", "[unit]") {
    CHECK(starts_with(invalid_field_detail(with("lastTransactionRevenueUsd", -1)), "lastTransactionRevenueUsd: "));
}

TEST_CASE("Negative points are accepted", "[unit]") {
    const auto r = decode_transaction(with("lastTransactionPointsBought", -500));
    REQUIRE(r.has_value());
    CHECK(r->points == -500);
}

TEST_CASE("A mixed-case type and an offset timestamp decode to normalized values", "[unit]") {
    json::object o = valid_txn_object();
    o["lastTransactionType"] = "gIfT";
    o["lastTransactionUtcTs"] = "2024-03-01T14:00:00+02:00";
    const auto r = decode_transaction(text_of(o));
    REQUIRE(r.has_value());
    CHECK(r->type == txn_type::gift);
    CHECK(r->ts == noon_2024_03_01);
}

// ---- encode_transaction ---------------------------------------------------------------------

TEST_CASE("An encoded transaction has the five wire keys and a UTC Z timestamp and upper-case type", "[unit]") {
    const transaction t{"M7", noon_2024_03_01 + 250000, txn_type::redeem, -300, 0};
    const json::value v = parse(encode_transaction(t));
    REQUIRE(v.is_object());
    const json::object& o = v.as_object();
    CHECK(o.size() == 5);
    CHECK(o.at("memberId").as_string() == "M7");
    CHECK(o.at("lastTransactionUtcTs").as_string() == "2024-03-01T12:00:00.250000Z");
    CHECK(o.at("lastTransactionType").as_string() == "REDEEM");
    CHECK(o.at("lastTransactionPointsBought").to_number<double>() == -300);
    CHECK(o.at("lastTransactionRevenueUsd").to_number<double>() == 0);
}

TEST_CASE("Decoding then encoding normalizes an offset timestamp and a lower-case type", "[unit]") {
    json::object in = valid_txn_object();
    in["lastTransactionType"] = "gift";
    in["lastTransactionUtcTs"] = "2024-03-01 14:00:00.5+02:00";
    const auto r = decode_transaction(text_of(in));
    REQUIRE(r.has_value());
    const json::value out = parse(encode_transaction(*r));
    CHECK(out.at("lastTransactionUtcTs").as_string() == "2024-03-01T12:00:00.500000Z");
    CHECK(out.at("lastTransactionType").as_string() == "GIFT");
}

TEST_CASE("An encoded transaction decodes back to the same transaction", "[unit]") {
    for (const transaction& t : {transaction{"M1", noon_2024_03_01, txn_type::buy, 1689, 158.4},
                                 transaction{"m-2_x", noon_2024_03_01 + 1, txn_type::gift, 275, 4.95},
                                 transaction{"M3", 0, txn_type::redeem, -800, 0}}) {
        INFO(encode_transaction(t));
        const auto back = decode_transaction(encode_transaction(t));
        REQUIRE(back.has_value());
        CHECK(*back == t);
    }
}

TEST_CASE("append_transaction appends to what is already in the buffer", "[unit]") {
    std::string out = "[";
    append_transaction(out, transaction{"M1", noon_2024_03_01, txn_type::buy, 1, 1});
    out += ",";
    append_transaction(out, transaction{"M2", noon_2024_03_01, txn_type::gift, 2, 2});
    out += "]";
    const json::value v = parse(out);
    REQUIRE(v.is_array());
    REQUIRE(v.as_array().size() == 2);
    CHECK(v.as_array()[1].at("memberId").as_string() == "M2");
}

// ---- decode_history -------------------------------------------------------------------------

TEST_CASE("A history array decodes in order", "[unit]") {
    const std::string body = "[" + encode_transaction({"M1", noon_2024_03_01, txn_type::buy, 10, 1}) + "," +
                             encode_transaction({"M1", noon_2024_03_01 - 1, txn_type::gift, 20, 2}) + "]";
    const auto h = decode_history(body);
    REQUIRE(h.has_value());
    REQUIRE(h->items.size() == 2);
    CHECK(h->items[0].points == 10);
    CHECK(h->items[1].points == 20);
    CHECK(h->items[1].ts == noon_2024_03_01 - 1);
    CHECK(h->skipped == 0);
    CHECK(h->skip_reasons.empty());
}

TEST_CASE("An empty history array decodes to no items", "[unit]") {
    const auto h = decode_history("[]");
    REQUIRE(h.has_value());
    CHECK(h->items.empty());
    CHECK(h->skipped == 0);
}

TEST_CASE("Invalid history entries are skipped, counted and explained", "[unit]") {
    const std::string body = "[" + with("memberId", "M1") + "," + without("lastTransactionType") + ",42," +
                             with("memberId", "M4") + "]";
    const auto h = decode_history(body);
    REQUIRE(h.has_value());
    REQUIRE(h->items.size() == 2);
    CHECK(h->items[0].member_id == "M1");
    CHECK(h->items[1].member_id == "M4");
    CHECK(h->skipped == 2);
    REQUIRE(h->skip_reasons.size() == 2);
    CHECK(contains(h->skip_reasons[0], "entry 1"));
    CHECK(contains(h->skip_reasons[0], "lastTransactionType"));
    CHECK(contains(h->skip_reasons[1], "entry 2"));
}

TEST_CASE("At most three skip reasons are kept however many entries are skipped", "[unit]") {
    std::string body = "[";
    for (int i = 0; i < 6; ++i) body += (i ? "," : "") + with("lastTransactionRevenueUsd", -1);
    body += "]";
    const auto h = decode_history(body);
    REQUIRE(h.has_value());
    CHECK(h->items.empty());
    CHECK(h->skipped == 6);
    CHECK(h->skip_reasons.size() == max_skip_reasons);
    CHECK(max_skip_reasons == 3);
}

TEST_CASE("A history that is not an array fails with invalid_field", "[unit]") {
    for (const char* body : {"{}", "null", "42", R"({"items":[]})"}) {
        INFO(body);
        const auto h = decode_history(body);
        REQUIRE_FALSE(h.has_value());
        CHECK(h.error().code == errc::invalid_field);
    }
}

TEST_CASE("A history that is not JSON fails with bad_json", "[unit]") {
    const auto h = decode_history("[{");
    REQUIRE_FALSE(h.has_value());
    CHECK(h.error().code == errc::bad_json);
}

TEST_CASE("A large history decodes completely", "[unit]") {
    std::string body = "[";
    for (int i = 0; i < 500; ++i) {
        if (i) body += ',';
        append_transaction(body, transaction{"M1", noon_2024_03_01 + i, txn_type::buy, static_cast<double>(i), 1});
    }
    body += "]";
    const auto h = decode_history(body);
    REQUIRE(h.has_value());
    REQUIRE(h->items.size() == 500);
    CHECK(h->items[499].points == 499);
}

TEST_CASE("Every history entry is judged by the same rules as a single transaction body", "[unit]") {
    // The history decoder streams (no DOM); decode_transaction builds one. Whatever an entry
    // looks like, both must accept the same transaction or name the same problem.
    const std::vector<std::string> entries{
        with("memberId", "M1"),
        without("memberId"),
        with("memberId", 42),
        with("memberId", "bad id"),
        with("lastTransactionUtcTs", json::array{1, 2}),
        with("lastTransactionUtcTs", "yesterday"),
        with("lastTransactionType", nullptr),
        with("lastTransactionType", "refund"),
        with("lastTransactionType", "gIfT"),
        with("lastTransactionPointsBought", "12"),
        with("lastTransactionPointsBought", true),
        with("lastTransactionPointsBought", json::object{{"v", 1}}),
        with("lastTransactionPointsBought", -7),
        with("lastTransactionRevenueUsd", 18446744073709551615ULL),
        with("lastTransactionRevenueUsd", -0.5),
        with("lastTransactionRevenueUsd", 0.1),
        // Extra keys, nested deeply, including ones that look like the contract's keys.
        R"({"x":{"memberId":"NESTED","lastTransactionType":[{"lastTransactionType":"GIFT"}]},"memberId":"M7",)"
        R"("lastTransactionUtcTs":"2024-03-01T12:00:00Z","lastTransactionType":"redeem","lastTransactionPointsBought":-5,)"
        R"("lastTransactionRevenueUsd":0,"y":[[1,2],{"z":null}]})",
        // Duplicate keys: the last one wins, as in a json::object.
        R"({"memberId":"M1","memberId":"M2","lastTransactionUtcTs":"2024-03-01T12:00:00Z","lastTransactionType":"BUY",)"
        R"("lastTransactionType":"GIFT","lastTransactionPointsBought":"x","lastTransactionPointsBought":3,"lastTransactionRevenueUsd":1})",
        // Escapes inside the values and the keys.
        R"({"memb\u0065rId":"M\u0031","lastTransactionUtcTs":"2024-03-01T12:00:00\u005a","lastTransactionType":"B\u0055Y",)"
        R"("lastTransactionPointsBought":1e2,"lastTransactionRevenueUsd":0.30000000000000004})",
        "42", "\"M1\"", "null", "[]", "[{}]",
    };
    std::string body = "[";
    for (std::size_t i = 0; i < entries.size(); ++i) body += (i ? "," : "") + entries[i];
    body += "]";
    const auto h = decode_history(body);
    REQUIRE(h.has_value());
    std::size_t next_item = 0, skipped = 0;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        INFO("entry " << i << ": " << entries[i]);
        const auto single = decode_transaction(entries[i]);
        if (single) {
            REQUIRE(next_item < h->items.size());
            CHECK(h->items[next_item++] == *single);
        } else {
            if (skipped < h->skip_reasons.size())
                CHECK(h->skip_reasons[skipped] == "entry " + std::to_string(i) + ": " + single.error().detail);
            ++skipped;
        }
    }
    CHECK(next_item == h->items.size());
    CHECK(skipped == h->skipped);
    CHECK(h->items.size() == 8);
}

TEST_CASE("A history whose top level is an object holding an array is not a history", "[unit]") {
    const auto h = decode_history(R"({"a":[)" + with("memberId", "M1") + "]}");
    REQUIRE_FALSE(h.has_value());
    CHECK(h.error().code == errc::invalid_field);
    CHECK(h.error().detail == "history: must be a JSON array");
}

TEST_CASE("A history with trailing bytes after the array is bad_json", "[unit]") {
    const auto h = decode_history("[] []");
    REQUIRE_FALSE(h.has_value());
    CHECK(h.error().code == errc::bad_json);
}

TEST_CASE("Decimals in a history decode exactly, as in a single transaction", "[unit]") {
    // 1.81's own parser is one ulp off for some decimals; the history path re-reads them too.
    std::string body = "[";
    const std::vector<std::string> numbers{"0.1", "2.675", "9007199254740993.5", "1.7976931348623157e308", "5e-324",
                                           "123456.78901234567"};
    for (std::size_t i = 0; i < numbers.size(); ++i) {
        if (i) body += ',';
        body += R"({"memberId":"M1","lastTransactionUtcTs":"2024-03-01T12:00:00Z","lastTransactionType":"BUY",)"
                R"("lastTransactionPointsBought":)" + numbers[i] + R"(,"lastTransactionRevenueUsd":)" + numbers[i] + "}";
    }
    body += "]";
    const auto h = decode_history(body);
    REQUIRE(h.has_value());
    REQUIRE(h->items.size() == numbers.size());
    for (std::size_t i = 0; i < numbers.size(); ++i) {
        double expected = 0;
        std::from_chars(numbers[i].data(), numbers[i].data() + numbers[i].size(), expected);
        CHECK(h->items[i].points == expected);
        CHECK(h->items[i].revenue == expected);
    }
}

TEST_CASE("The normalized entry writers match the general JSON writer byte for byte", "[unit]") {
    // append_transaction without as_sent and append_history_entry share a hand-written writer;
    // given the normalized texts as "sent", append_transaction goes through json_writer instead.
    const std::vector<transaction> samples{
        {"M1", noon_2024_03_01, txn_type::buy, 120, 12.5},
        {"member_with-long-id_0123456789", noon_2024_03_01 + 123456, txn_type::gift, 0.1, 0},
        {"Z", -86400LL * micros_per_second * 365, txn_type::redeem, -350, 0},
        {"x", noon_2024_03_01, txn_type::buy, -0.0, 1e300},
        {"y", 253402300799LL * micros_per_second, txn_type::gift, 5e-324, 18446744073709551615.0},
    };
    for (const transaction& t : samples) {
        INFO(t.member_id);
        const transaction_text normalized{format_rfc3339(t.ts), to_string(t.type)};
        std::string expected = "[";
        append_transaction(expected, t, &normalized);
        std::string fast = "[";
        append_history_entry(fast, history_entry_prefix(t.member_id), t.ts, t.type, t.points, t.revenue);
        CHECK(fast == expected);
        std::string persisted = "[";
        append_transaction(persisted, t);
        CHECK(persisted == expected);
    }
}

// ---- features -------------------------------------------------------------------------------

TEST_CASE("Encoded features use the contract key names and an integer DAYS_SINCE", "[unit]") {
    const json::value v = parse(encode_features(sample_features()));
    REQUIRE(v.is_object());
    const json::object& o = v.as_object();
    CHECK(o.size() == 8);
    for (const char* key : {"AVG_POINTS_BOUGHT", "AVG_REVENUE_USD", "LAST_3_TRANSACTIONS_AVG_POINTS_BOUGHT",
                            "LAST_3_TRANSACTIONS_AVG_REVENUE_USD", "PCT_BUY_TRANSACTIONS", "PCT_GIFT_TRANSACTIONS",
                            "PCT_REDEEM_TRANSACTIONS", "DAYS_SINCE_LAST_TRANSACTION"}) {
        INFO(key);
        CHECK(o.contains(key));
    }
    REQUIRE(o.at("DAYS_SINCE_LAST_TRANSACTION").is_int64());
    CHECK(o.at("DAYS_SINCE_LAST_TRANSACTION").as_int64() == 12);
    CHECK(o.at("AVG_REVENUE_USD").as_double() == 0.1);
}

TEST_CASE("Features survive an encode and decode round trip exactly", "[unit]") {
    const member_features f = sample_features();
    const auto back = decode_features(encode_features(f));
    REQUIRE(back.has_value());
    CHECK(back->avg_points_bought == f.avg_points_bought);
    CHECK(back->avg_revenue_usd == f.avg_revenue_usd);
    CHECK(back->last_3_avg_points_bought == f.last_3_avg_points_bought);
    CHECK(back->last_3_avg_revenue_usd == f.last_3_avg_revenue_usd);
    CHECK(back->pct_buy == f.pct_buy);
    CHECK(back->pct_gift == f.pct_gift);
    CHECK(back->pct_redeem == f.pct_redeem);
    CHECK(back->days_since_last_transaction == f.days_since_last_transaction);
}

TEST_CASE("Feature averages from many transactions survive a round trip exactly", "[unit]") {
    // Averages such as sum / n for n up to 200 exercise 16-17 significant digits.
    for (int n = 1; n <= 200; ++n) {
        member_features f{};
        f.avg_points_bought = 98765.0 / n;
        f.avg_revenue_usd = 1234.56 / n;
        f.last_3_avg_points_bought = -4321.0 / 3 / n;
        f.last_3_avg_revenue_usd = 77.7 / n;
        f.pct_buy = 1.0 / n;
        f.pct_gift = (n - 1.0) / n;
        f.days_since_last_transaction = n;
        const std::string text = encode_features(f);
        INFO(text);
        const auto back = decode_features(text);
        REQUIRE(back.has_value());
        CHECK(*back == f);
    }
}

TEST_CASE("DAYS_SINCE written as 3.0 is accepted as 3", "[unit]") {
    const auto r = decode_features(features_with("DAYS_SINCE_LAST_TRANSACTION", 3.0));
    REQUIRE(r.has_value());
    CHECK(r->days_since_last_transaction == 3);
}

TEST_CASE("A fractional DAYS_SINCE is rejected naming the field", "[unit]") {
    const auto r = decode_features(features_with("DAYS_SINCE_LAST_TRANSACTION", 3.5));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK(starts_with(r.error().detail, "DAYS_SINCE_LAST_TRANSACTION: "));
}

TEST_CASE("A negative DAYS_SINCE is rejected naming the field", "[unit]") {
    for (const json::value& days : {json::value(-1), json::value(-1.0)}) {
        INFO(text_of(days));
        const auto r = decode_features(features_with("DAYS_SINCE_LAST_TRANSACTION", days));
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::invalid_field);
        CHECK(starts_with(r.error().detail, "DAYS_SINCE_LAST_TRANSACTION: "));
    }
}

TEST_CASE("A DAYS_SINCE that is not a number is rejected naming the field", "[unit]") {
    for (const json::value& days : {json::value("3"), json::value(nullptr), json::value(true)}) {
        INFO(text_of(days));
        const auto r = decode_features(features_with("DAYS_SINCE_LAST_TRANSACTION", days));
        REQUIRE_FALSE(r.has_value());
        CHECK(starts_with(r.error().detail, "DAYS_SINCE_LAST_TRANSACTION: "));
    }
}

TEST_CASE("A missing feature is named", "[unit]") {
    json::value o = parse(encode_features(sample_features()));
    o.as_object().erase("PCT_GIFT_TRANSACTIONS");
    const auto r = decode_features(text_of(o));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK(starts_with(r.error().detail, "PCT_GIFT_TRANSACTIONS: "));
}

TEST_CASE("A feature that is not a number is named", "[unit]") {
    const auto r = decode_features(features_with("AVG_REVENUE_USD", "12.5"));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK(starts_with(r.error().detail, "AVG_REVENUE_USD: "));
}

TEST_CASE("Integer feature values are accepted", "[unit]") {
    const auto r = decode_features(
        R"({"AVG_POINTS_BOUGHT":100,"AVG_REVENUE_USD":20,"LAST_3_TRANSACTIONS_AVG_POINTS_BOUGHT":-5,)"
        R"("LAST_3_TRANSACTIONS_AVG_REVENUE_USD":0,"PCT_BUY_TRANSACTIONS":1,"PCT_GIFT_TRANSACTIONS":0,)"
        R"("PCT_REDEEM_TRANSACTIONS":0,"DAYS_SINCE_LAST_TRANSACTION":0,"extra":"ok"})");
    REQUIRE(r.has_value());
    CHECK(*r == member_features{100, 20, -5, 0, 1, 0, 0, 0});
}

TEST_CASE("Features that are not a JSON object are rejected", "[unit]") {
    CHECK(decode_features("[1,2]").error().code == errc::invalid_field);
    CHECK(decode_features("{").error().code == errc::bad_json);
}

// ---- prediction, offer request, offer -------------------------------------------------------

TEST_CASE("A prediction encodes and decodes", "[unit]") {
    const json::value v = parse(encode_prediction(0.25));
    CHECK(v == json::value(json::object{{"prediction", 0.25}}));
    const auto back = decode_prediction(encode_prediction(0.1));
    REQUIRE(back.has_value());
    CHECK(*back == 0.1);
}

TEST_CASE("A prediction may be an integer", "[unit]") {
    const auto r = decode_prediction(R"({"prediction":412,"model":"v2"})");
    REQUIRE(r.has_value());
    CHECK(*r == 412);
}

TEST_CASE("A missing or non-numeric prediction is named", "[unit]") {
    for (const char* body : {R"({})", R"({"prediction":"0.5"})", R"({"prediction":null})", R"({"Prediction":1})"}) {
        INFO(body);
        const auto r = decode_prediction(body);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::invalid_field);
        CHECK(starts_with(r.error().detail, "prediction: "));
    }
}

TEST_CASE("A prediction body that is not JSON is bad_json and not an object is invalid_field", "[unit]") {
    CHECK(decode_prediction("0.5}").error().code == errc::bad_json);
    CHECK(decode_prediction("0.5").error().code == errc::invalid_field);
}

TEST_CASE("An offer request encodes and decodes", "[unit]") {
    const json::value v = parse(encode_offer_request({400, 0.5}));
    REQUIRE(v.is_object());
    CHECK(v.as_object().size() == 2);
    CHECK(v.at("ats_prediction").to_number<double>() == 400);
    CHECK(v.at("resp_prediction").to_number<double>() == 0.5);
    const auto back = decode_offer_request(encode_offer_request({1234.0 / 7, 0.9}));
    REQUIRE(back.has_value());
    CHECK(back->ats == 1234.0 / 7);
    CHECK(back->resp == 0.9);
}

TEST_CASE("An offer request missing a prediction names it", "[unit]") {
    const auto a = decode_offer_request(R"({"ats_prediction":400})");
    REQUIRE_FALSE(a.has_value());
    CHECK(a.error().code == errc::invalid_field);
    CHECK(starts_with(a.error().detail, "resp_prediction: "));
    const auto b = decode_offer_request(R"({"resp_prediction":0.5,"ats_prediction":"400"})");
    REQUIRE_FALSE(b.has_value());
    CHECK(starts_with(b.error().detail, "ats_prediction: "));
}

TEST_CASE("An offer encodes and decodes", "[unit]") {
    CHECK(parse(encode_offer("50% Discount")) == json::value(json::object{{"offer", "50% Discount"}}));
    const auto back = decode_offer(encode_offer("35% Bonus"));
    REQUIRE(back.has_value());
    CHECK(*back == "35% Bonus");
}

TEST_CASE("An empty, missing or non-string offer is named", "[unit]") {
    for (const char* body : {R"({"offer":""})", R"({})", R"({"offer":50})", R"({"offer":null})"}) {
        INFO(body);
        const auto r = decode_offer(body);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == errc::invalid_field);
        CHECK(starts_with(r.error().detail, "offer: "));
    }
    CHECK(decode_offer("{offer}").error().code == errc::bad_json);
}

TEST_CASE("A member offer has the member id and the offer", "[unit]") {
    CHECK(parse(encode_member_offer("M100001", "35% Bonus")) ==
          json::value(json::object{{"memberId", "M100001"}, {"offer", "35% Bonus"}}));
}

TEST_CASE("A detail body carries the text escaped", "[unit]") {
    const std::string detail = "lastTransactionType: must be BUY, got 'x\"y'\n\\";
    CHECK(parse(encode_detail(detail)) == json::value(json::object{{"detail", detail.c_str()}}));
}

// ---- numbers --------------------------------------------------------------------------------

TEST_CASE("JSON numbers print as a person expects", "[unit]") {
    CHECK(json_number(2.5) == "2.5");
    CHECK(json_number(100) == "100");
    CHECK(json_number(0) == "0");
    CHECK(json_number(-3) == "-3");
    CHECK(json_number(0.1) == "0.1");
    CHECK(json_number(0.9) == "0.9");
    CHECK(json_number(123456789012.0) == "123456789012");
    CHECK(json_number(-0.25) == "-0.25");
}

TEST_CASE("JSON numbers in the usual ranges print without an exponent", "[unit]") {
    CHECK(json_number(1e6) == "1000000");
    CHECK(json_number(1e5) == "100000");
    CHECK(json_number(-2.5e7) == "-25000000");
    CHECK(json_number(1e20) == "100000000000000000000");
    CHECK(json_number(1e-4) == "0.0001");
    CHECK(json_number(5e-4) == "0.0005");
    CHECK(json_number(5e-5) == "0.00005");
    CHECK(json_number(1.5e-7) == "0.00000015");
    CHECK(json_number(0.1 + 0.2) == "0.30000000000000004");
}

TEST_CASE("JSON numbers beyond the usual ranges keep the shortest exponent form", "[unit]") {
    CHECK(json_number(1e21) == "1e+21");
    CHECK(json_number(1e308) == "1e+308");
    CHECK(json_number(-1e-8) == "-1e-08");
    CHECK(json_number(5e-324) == "5e-324");
}

TEST_CASE("Negative zero prints as 0", "[unit]") {
    CHECK(json_number(-0.0) == "0");
}

TEST_CASE("Non-finite numbers print as null", "[unit]") {
    CHECK(json_number(std::numeric_limits<double>::quiet_NaN()) == "null");
    CHECK(json_number(std::numeric_limits<double>::infinity()) == "null");
    CHECK(json_number(-std::numeric_limits<double>::infinity()) == "null");
}

TEST_CASE("Printed numbers are valid JSON and read back to the same double", "[unit]") {
    for (const double d : {1e21, 1e-7, 5e-324, 1.7976931348623157e308, 1.0 / 3, -2.0 / 3, 0.1 + 0.2, 123.456}) {
        const std::string text = json_number(d);
        INFO(text);
        CHECK(parse(text).is_number());
        double back = 0;
        const auto res = std::from_chars(text.data(), text.data() + text.size(), back);
        CHECK(res.ec == std::errc{});
        CHECK(res.ptr == text.data() + text.size());
        CHECK(back == d);
    }
}

TEST_CASE("A prediction of 100 is printed without an exponent or a fraction", "[unit]") {
    CHECK(encode_prediction(100.0) == R"({"prediction":100})");
    CHECK(encode_prediction(2.5) == R"({"prediction":2.5})");
}

// ---- strings --------------------------------------------------------------------------------

TEST_CASE("Quotes and backslashes are escaped", "[unit]") {
    CHECK(json_string(R"(a"b\c)") == R"("a\"b\\c")");
    CHECK(decoded_string_literal(R"(a"b\c)") == R"(a"b\c)");
}

TEST_CASE("Control characters are escaped and read back unchanged", "[unit]") {
    std::string raw = "tab\there\nnew\rret\x01\x1f\x08\x0c end";
    raw += '\0';
    const std::string literal = json_string(raw);
    for (const char c : literal) CHECK(static_cast<unsigned char>(c) >= 0x20);
    CHECK(decoded_string_literal(raw) == raw);
}

TEST_CASE("Valid UTF-8 passes through unchanged", "[unit]") {
    const std::string raw = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF";
    CHECK(json_string(raw) == "\"" + raw + "\"");
    CHECK(decoded_string_literal(raw) == raw);
}

TEST_CASE("Stray and truncated UTF-8 bytes are replaced so the output is valid JSON", "[unit]") {
    const std::string fffd = "\xEF\xBF\xBD";
    CHECK(decoded_string_literal("a\xFF" "b") == "a" + fffd + "b");
    CHECK(decoded_string_literal("\x80") == fffd);
    CHECK(decoded_string_literal("abc\xC3") == "abc" + fffd);
    CHECK(contains(decoded_string_literal("\xE2\x82" "x"), fffd));
    CHECK(contains(decoded_string_literal("\xC3(") , fffd));
    CHECK(contains(decoded_string_literal("\xF5\x80\x80\x80"), fffd));
    CHECK(contains(decoded_string_literal("\xC0\xAF"), fffd));
}

TEST_CASE("Overlong forms, surrogates and code points above U+10FFFF are replaced", "[unit]") {
    for (const char* raw : {"\xE0\x80\xAF", "\xED\xA0\x80", "\xF0\x80\x80\xAF", "\xF4\x90\x80\x80"}) {
        INFO("input bytes: " << std::string_view(raw).size());
        const std::string literal = json_string(raw);
        CHECK(valid_utf8(literal));
        json::error_code ec;
        (void)json::parse(literal, ec);
        CHECK_FALSE(ec);
    }
}

// ---- json_writer ----------------------------------------------------------------------------

TEST_CASE("The writer separates nested members and elements with commas", "[unit]") {
    std::string out;
    json_writer w(out);
    w.begin_object()
        .member("a", 1)
        .key("b")
        .begin_array()
        .value(1)
        .value("x")
        .null()
        .value(true)
        .begin_object()
        .end_object()
        .begin_array()
        .end_array()
        .end_array()
        .member("c", 2.5)
        .key("d")
        .begin_object()
        .member("e", false)
        .end_object()
        .end_object();
    const json::value expected = json::parse(R"({"a":1,"b":[1,"x",null,true,{},[]],"c":2.5,"d":{"e":false}})");
    CHECK(parse(out) == expected);
}

TEST_CASE("The writer prints 64-bit integers exactly", "[unit]") {
    std::string out;
    json_writer(out)
        .begin_array()
        .value(std::numeric_limits<std::int64_t>::min())
        .value(std::numeric_limits<std::int64_t>::max())
        .value(std::numeric_limits<std::uint64_t>::max())
        .end_array();
    const json::value v = parse(out);
    CHECK(v.at(0).as_int64() == std::numeric_limits<std::int64_t>::min());
    CHECK(v.at(1).as_int64() == std::numeric_limits<std::int64_t>::max());
    CHECK(v.at(2).as_uint64() == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("The writer inserts raw JSON as a value", "[unit]") {
    std::string out;
    json_writer(out).begin_object().key("items").raw(R"([{"x":1}])").member("n", 1).end_object();
    CHECK(parse(out) == json::parse(R"({"items":[{"x":1}],"n":1})"));
}

TEST_CASE("The writer writes a non-finite double as null", "[unit]") {
    std::string out;
    json_writer(out).begin_object().member("p", std::numeric_limits<double>::quiet_NaN()).end_object();
    CHECK(parse(out) == json::parse(R"({"p":null})"));
}

TEST_CASE("The writer escapes keys", "[unit]") {
    std::string out;
    json_writer(out).begin_object().member("we\"ird\n", 1).end_object();
    CHECK(parse(out) == json::value(json::object{{"we\"ird\n", 1}}));
}

namespace {
std::vector<std::string> fields_of(const failure& f) {
    std::vector<std::string> out;
    for (const field_problem& p : f.errors) out.push_back(p.field);
    return out;
}
}  // namespace

TEST_CASE("A transaction with several invalid fields reports every one, in wire order", "[unit]") {
    const auto r = decode_transaction(R"({"memberId":"M 1","lastTransactionUtcTs":"yesterday","lastTransactionType":7,)"
                                      R"("lastTransactionRevenueUsd":-1})");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::invalid_field);
    CHECK(fields_of(r.error()) == std::vector<std::string>{"memberId", "lastTransactionUtcTs", "lastTransactionType",
                                                           "lastTransactionPointsBought", "lastTransactionRevenueUsd"});
    CHECK(r.error().errors[2].message == "must be a string");
    CHECK(r.error().errors[3].message == "field required");
    CHECK(r.error().errors[4].message == "must be >= 0");
    CHECK(r.error().detail == "memberId: " + r.error().errors[0].message);
}

TEST_CASE("The detail of a transaction names the first field of a wrong type before a broken rule, as before", "[unit]") {
    json::object o = valid_txn_object();
    o["lastTransactionUtcTs"] = "yesterday";
    o.erase("lastTransactionPointsBought");
    const auto r = decode_transaction(text_of(o));
    REQUIRE_FALSE(r.has_value());
    CHECK(fields_of(r.error()) == std::vector<std::string>{"lastTransactionUtcTs", "lastTransactionPointsBought"});
    CHECK(r.error().detail == "lastTransactionPointsBought: field required");
}

TEST_CASE("A transaction with one invalid field reports it in errors as in the detail", "[unit]") {
    const auto r = decode_transaction(with("lastTransactionType", "refund"));
    REQUIRE_FALSE(r.has_value());
    REQUIRE(r.error().errors.size() == 1);
    CHECK(r.error().errors[0].field == "lastTransactionType");
    CHECK(r.error().detail == "lastTransactionType: " + r.error().errors[0].message);
}

TEST_CASE("A features body missing several keys reports every one", "[unit]") {
    json::value o = parse(encode_features(sample_features()));
    o.as_object().erase("PCT_GIFT_TRANSACTIONS");
    o.as_object().erase("AVG_POINTS_BOUGHT");
    o.as_object()["DAYS_SINCE_LAST_TRANSACTION"] = -2;
    const auto r = decode_features(text_of(o));
    REQUIRE_FALSE(r.has_value());
    CHECK(fields_of(r.error()) == std::vector<std::string>{"AVG_POINTS_BOUGHT", "PCT_GIFT_TRANSACTIONS", "DAYS_SINCE_LAST_TRANSACTION"});
    CHECK(r.error().detail == "AVG_POINTS_BOUGHT: field required");
}

TEST_CASE("An offer request with both predictions invalid reports both", "[unit]") {
    const auto r = decode_offer_request(R"({"ats_prediction":"1"})");
    REQUIRE_FALSE(r.has_value());
    CHECK(fields_of(r.error()) == std::vector<std::string>{"ats_prediction", "resp_prediction"});
}

TEST_CASE("A body that is not an object is reported as the field body", "[unit]") {
    const auto r = decode_transaction("[1]");
    REQUIRE_FALSE(r.has_value());
    CHECK(fields_of(r.error()) == std::vector<std::string>{"body"});
    CHECK(r.error().detail == "body: must be a JSON object");
}

TEST_CASE("A validation error body carries the detail and every field problem", "[unit]") {
    const std::vector<field_problem> problems{{"memberId", "must not be empty"}, {"lastTransactionType", "got 'x\"'"}};
    CHECK(parse(encode_validation_error("memberId: must not be empty", problems)) ==
          parse(R"({"detail":"memberId: must not be empty","errors":[{"field":"memberId","message":"must not be empty"},)"
                R"({"field":"lastTransactionType","message":"got 'x\"'"}]})"));
}
