// Wire codecs over Boost.JSON (parsing) and json_writer (serialization).
#include "offerd/codec/wire.hpp"

#include <array>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_stack.hpp>
#include <charconv>
#include <cmath>
#include <optional>

#include "offerd/codec/json_writer.hpp"

namespace offerd {

namespace json = boost::json;

namespace {

constexpr std::string_view k_avg_points = "AVG_POINTS_BOUGHT";
constexpr std::string_view k_avg_revenue = "AVG_REVENUE_USD";
constexpr std::string_view k_l3_points = "LAST_3_TRANSACTIONS_AVG_POINTS_BOUGHT";
constexpr std::string_view k_l3_revenue = "LAST_3_TRANSACTIONS_AVG_REVENUE_USD";
constexpr std::string_view k_pct_buy = "PCT_BUY_TRANSACTIONS";
constexpr std::string_view k_pct_gift = "PCT_GIFT_TRANSACTIONS";
constexpr std::string_view k_pct_redeem = "PCT_REDEEM_TRANSACTIONS";
constexpr std::string_view k_days = "DAYS_SINCE_LAST_TRANSACTION";

// Boost.JSON 1.81's own parser converts some decimals to a neighbouring double (off by one ulp;
// exact parsing arrived in 1.83). Features must survive the trip to the prediction service
// bit-for-bit, so this handler re-reads every decimal's text with std::from_chars, which is
// exact, and otherwise builds the value exactly like json::parser does.
struct exact_number_handler {
    static constexpr std::size_t max_object_size = json::object::max_size();
    static constexpr std::size_t max_array_size = json::array::max_size();
    static constexpr std::size_t max_key_size = json::string::max_size();
    static constexpr std::size_t max_string_size = json::string::max_size();

    json::value_stack st;
    std::string number;  // text of a number split across input chunks

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_object_begin(json::error_code&) { return true; }
    bool on_object_end(std::size_t n, json::error_code&) { return st.push_object(n), true; }
    bool on_array_begin(json::error_code&) { return true; }
    bool on_array_end(std::size_t n, json::error_code&) { return st.push_array(n), true; }
    bool on_key_part(json::string_view s, std::size_t, json::error_code&) { return st.push_chars(s), true; }
    bool on_key(json::string_view s, std::size_t, json::error_code&) { return st.push_key(s), true; }
    bool on_string_part(json::string_view s, std::size_t, json::error_code&) { return st.push_chars(s), true; }
    bool on_string(json::string_view s, std::size_t, json::error_code&) { return st.push_string(s), true; }
    bool on_number_part(json::string_view s, json::error_code&) { return number.append(s.data(), s.size()), true; }
    bool on_int64(std::int64_t i, json::string_view, json::error_code&) { return number.clear(), st.push_int64(i), true; }
    bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) { return number.clear(), st.push_uint64(u), true; }
    bool on_double(double d, json::string_view s, json::error_code&) {
        number.append(s.data(), s.size());
        double exact = 0;
        const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), exact);
        // Out of range: keep Boost's value (inf or 0); callers reject non-finite numbers.
        st.push_double(ec == std::errc{} && ptr == number.data() + number.size() ? exact : d);
        number.clear();
        return true;
    }
    bool on_bool(bool b, json::error_code&) { return st.push_bool(b), true; }
    bool on_null(json::error_code&) { return st.push_null(), true; }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }
};

// Parses into a monotonic resource seeded by a stack buffer: one request's JSON usually fits,
// so decoding allocates nothing but the decoded strings.
template <class F>
auto with_parsed(std::string_view body, F&& f) -> decltype(f(std::declval<const json::value&>())) {
    std::array<unsigned char, 4096> buf;  // NOLINT: uninitialized on purpose, the resource owns it
    json::monotonic_resource mr(buf.data(), buf.size());
    json::basic_parser<exact_number_handler> p(json::parse_options{});
    p.handler().st.reset(&mr);
    json::error_code ec;
    const std::size_t n = p.write_some(false, body.data(), body.size(), ec);
    if (!ec && n < body.size()) ec = json::error::extra_data;
    if (ec) return fail(errc::bad_json, "body is not valid JSON: " + ec.message());
    const json::value v = p.handler().st.release();
    return f(v);
}

failure field_error(std::string_view name, std::string_view why) {
    return fail(errc::invalid_field, std::string(name) + ": " + std::string(why));
}

const json::object* as_object(const json::value& v) { return v.if_object(); }

std::optional<double> as_number(const json::value& v) {
    if (v.is_double()) return v.get_double();
    if (v.is_int64()) return static_cast<double>(v.get_int64());
    if (v.is_uint64()) return static_cast<double>(v.get_uint64());
    return std::nullopt;
}

result<double> number_field(const json::object& o, std::string_view name) {
    const json::value* v = o.if_contains(json::string_view(name.data(), name.size()));
    if (!v) return field_error(name, "field required");
    const auto d = as_number(*v);
    if (!d) return field_error(name, "must be a number");
    if (!std::isfinite(*d)) return field_error(name, "must be a finite number");
    return *d;
}

result<std::string_view> string_field(const json::object& o, std::string_view name) {
    const json::value* v = o.if_contains(json::string_view(name.data(), name.size()));
    if (!v) return field_error(name, "field required");
    const json::string* s = v->if_string();
    if (!s) return field_error(name, "must be a string");
    return std::string_view(s->data(), s->size());
}

result<transaction> transaction_from(const json::value& v, transaction_text* as_sent = nullptr) {
    const json::object* o = as_object(v);
    if (!o) return fail(errc::invalid_field, "body: must be a JSON object");
    auto id = string_field(*o, field::member_id);
    if (!id) return std::move(id).error();
    if (auto valid = validate_member_id(*id); !valid) return std::move(valid).error();
    auto ts = string_field(*o, field::ts);
    if (!ts) return std::move(ts).error();
    auto type = string_field(*o, field::type);
    if (!type) return std::move(type).error();
    auto points = number_field(*o, field::points);
    if (!points) return std::move(points).error();
    auto revenue = number_field(*o, field::revenue);
    if (!revenue) return std::move(revenue).error();
    if (as_sent) *as_sent = transaction_text{std::string(*ts), std::string(*type)};
    return make_transaction(*id, *ts, *type, *points, *revenue);
}

}  // namespace

result<transaction> decode_transaction(std::string_view body, transaction_text* as_sent) {
    return with_parsed(body, [as_sent](const json::value& v) { return transaction_from(v, as_sent); });
}

void append_transaction(std::string& out, const transaction& t, const transaction_text* as_sent) {
    json_writer w(out);
    w.begin_object().member(field::member_id, std::string_view(t.member_id));
    if (as_sent) w.member(field::ts, std::string_view(as_sent->ts)).member(field::type, std::string_view(as_sent->type));
    else w.member(field::ts, std::string_view(format_rfc3339(t.ts))).member(field::type, to_string(t.type));
    w
        .member(field::points, t.points)
        .member(field::revenue, t.revenue)
        .end_object();
}

std::string encode_transaction(const transaction& t) {
    std::string out;
    out.reserve(160);
    append_transaction(out, t);
    return out;
}

result<decoded_history> decode_history(std::string_view body) {
    // Histories can be large: let Boost.JSON grow past the stack buffer as needed.
    return with_parsed(body, [](const json::value& v) -> result<decoded_history> {
        const json::array* a = v.if_array();
        if (!a) return fail(errc::invalid_field, "history: must be a JSON array");
        decoded_history h;
        h.items.reserve(a->size());
        for (std::size_t i = 0; i < a->size(); ++i) {
            auto t = transaction_from((*a)[i]);
            if (t) {
                h.items.push_back(std::move(t).value());
            } else {
                ++h.skipped;
                if (h.skip_reasons.size() < max_skip_reasons)
                    h.skip_reasons.push_back("entry " + std::to_string(i) + ": " + t.error().detail);
            }
        }
        return h;
    });
}

std::string encode_features(const member_features& f) {
    std::string out;
    out.reserve(320);
    json_writer w(out);
    w.begin_object()
        .member(k_avg_points, f.avg_points_bought)
        .member(k_avg_revenue, f.avg_revenue_usd)
        .member(k_l3_points, f.last_3_avg_points_bought)
        .member(k_l3_revenue, f.last_3_avg_revenue_usd)
        .member(k_pct_buy, f.pct_buy)
        .member(k_pct_gift, f.pct_gift)
        .member(k_pct_redeem, f.pct_redeem)
        .member(k_days, f.days_since_last_transaction)
        .end_object();
    return out;
}

result<member_features> decode_features(std::string_view body) {
    return with_parsed(body, [](const json::value& v) -> result<member_features> {
        const json::object* o = as_object(v);
        if (!o) return fail(errc::invalid_field, "body: must be a JSON object");
        member_features f;
        const std::array<std::pair<std::string_view, double*>, 7> numbers{{
            {k_avg_points, &f.avg_points_bought},
            {k_avg_revenue, &f.avg_revenue_usd},
            {k_l3_points, &f.last_3_avg_points_bought},
            {k_l3_revenue, &f.last_3_avg_revenue_usd},
            {k_pct_buy, &f.pct_buy},
            {k_pct_gift, &f.pct_gift},
            {k_pct_redeem, &f.pct_redeem},
        }};
        for (const auto& [name, dst] : numbers) {
            auto d = number_field(*o, name);
            if (!d) return std::move(d).error();
            *dst = *d;
        }
        const json::value* days = o->if_contains(json::string_view(k_days.data(), k_days.size()));
        if (!days) return field_error(k_days, "field required");
        if (days->is_int64()) {
            f.days_since_last_transaction = days->get_int64();
        } else if (days->is_uint64()) {
            return field_error(k_days, "too large");
        } else if (days->is_double() && std::isfinite(days->get_double()) &&
                   std::trunc(days->get_double()) == days->get_double() && std::abs(days->get_double()) < 1e15) {
            f.days_since_last_transaction = static_cast<std::int64_t>(days->get_double());
        } else {
            return field_error(k_days, "must be an integer");
        }
        if (f.days_since_last_transaction < 0) return field_error(k_days, "must be >= 0");
        return f;
    });
}

std::string encode_prediction(double p) {
    std::string out;
    json_writer(out).begin_object().member("prediction", p).end_object();
    return out;
}

result<double> decode_prediction(std::string_view body) {
    return with_parsed(body, [](const json::value& v) -> result<double> {
        const json::object* o = as_object(v);
        if (!o) return fail(errc::invalid_field, "body: must be a JSON object");
        return number_field(*o, "prediction");
    });
}

std::string encode_offer_request(const offer_request& r) {
    std::string out;
    json_writer(out).begin_object().member("ats_prediction", r.ats).member("resp_prediction", r.resp).end_object();
    return out;
}

result<offer_request> decode_offer_request(std::string_view body) {
    return with_parsed(body, [](const json::value& v) -> result<offer_request> {
        const json::object* o = as_object(v);
        if (!o) return fail(errc::invalid_field, "body: must be a JSON object");
        auto ats = number_field(*o, "ats_prediction");
        if (!ats) return std::move(ats).error();
        auto resp = number_field(*o, "resp_prediction");
        if (!resp) return std::move(resp).error();
        return offer_request{*ats, *resp};
    });
}

std::string encode_offer(std::string_view offer) {
    std::string out;
    json_writer(out).begin_object().member("offer", offer).end_object();
    return out;
}

result<std::string> decode_offer(std::string_view body) {
    return with_parsed(body, [](const json::value& v) -> result<std::string> {
        const json::object* o = as_object(v);
        if (!o) return fail(errc::invalid_field, "body: must be a JSON object");
        auto s = string_field(*o, "offer");
        if (!s) return std::move(s).error();
        if (s->empty()) return field_error("offer", "must not be empty");
        return std::string(*s);
    });
}

std::string encode_member_offer(std::string_view member_id, std::string_view offer) {
    std::string out;
    out.reserve(64 + member_id.size());
    json_writer(out).begin_object().member("memberId", member_id).member("offer", offer).end_object();
    return out;
}

result<std::string> decode_json_string(std::string_view literal) {
    return with_parsed(literal, [](const json::value& v) -> result<std::string> {
        if (!v.is_string()) return fail(errc::invalid_field, "expected a JSON string");
        return std::string(v.get_string());
    });
}

std::string encode_detail(std::string_view detail) {
    std::string out;
    json_writer(out).begin_object().member("detail", detail).end_object();
    return out;
}

}  // namespace offerd
