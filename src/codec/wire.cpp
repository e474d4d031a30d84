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
// bit-for-bit, so every handler here re-reads a decimal's text with std::from_chars, which is
// exact. `text` holds the parts split across input chunks; `tail` is the last part; boost_value
// is kept when the text is out of range (inf or 0; callers reject non-finite numbers). Clears text.
double exact_decimal(std::string& text, json::string_view tail, double boost_value) {
    text.append(tail.data(), tail.size());
    double exact = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), exact);
    const double d = ec == std::errc{} && ptr == text.data() + text.size() ? exact : boost_value;
    text.clear();
    return d;
}

// Feeds the whole body to p; the bad_json failure when it is not one complete JSON text.
template <class Handler>
std::optional<failure> parse_whole(json::basic_parser<Handler>& p, std::string_view body) {
    json::error_code ec;
    const std::size_t n = p.write_some(false, body.data(), body.size(), ec);
    if (!ec && n < body.size()) ec = json::error::extra_data;
    if (ec) return fail(errc::bad_json, "body is not valid JSON: " + ec.message());
    return std::nullopt;
}

// Builds the value exactly like json::parser does, but with exact decimals.
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
    bool on_double(double d, json::string_view s, json::error_code&) { return st.push_double(exact_decimal(number, s, d)), true; }
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
    if (auto bad = parse_whole(p, body)) return std::move(*bad);
    const json::value v = p.handler().st.release();
    return f(v);
}

failure field_error(std::string_view name, std::string_view why) {
    return invalid_fields({{std::string(name), std::string(why)}});
}

const json::object* as_object(const json::value& v) { return v.if_object(); }

std::optional<double> as_number(const json::value& v) {
    if (v.is_double()) return v.get_double();
    if (v.is_int64()) return static_cast<double>(v.get_int64());
    if (v.is_uint64()) return static_cast<double>(v.get_uint64());
    return std::nullopt;
}

// One transaction field as found in a JSON object, whichever parser found it.
struct raw_field {
    enum class kind : std::uint8_t { absent, string, number, other } k = kind::absent;
    std::string_view text;  // kind::string
    double number = 0;      // kind::number

    // What is wrong with the field's JSON type, or "" when it fits.
    std::string_view string_problem() const {
        if (k == kind::absent) return "field required";
        return k == kind::string ? std::string_view() : "must be a string";
    }
    std::string_view number_problem() const {
        if (k == kind::absent) return "field required";
        if (k != kind::number) return "must be a number";
        return std::isfinite(number) ? std::string_view() : "must be a finite number";
    }
    result<std::string_view> as_string(std::string_view name) const {
        if (const auto why = string_problem(); !why.empty()) return field_error(name, why);
        return text;
    }
    result<double> as_finite(std::string_view name) const {
        if (const auto why = number_problem(); !why.empty()) return field_error(name, why);
        return number;
    }
};

// The five contract fields in wire order; raw_fields::index maps a key to its slot.
struct raw_fields {
    std::array<raw_field, 5> f;
    static constexpr std::array<std::string_view, 5> names{field::member_id, field::ts, field::type, field::points,
                                                           field::revenue};
    static int index(std::string_view key) noexcept {
        for (std::size_t i = 0; i < names.size(); ++i)
            if (key == names[i]) return static_cast<int>(i);
        return -1;
    }
};

raw_field from_value(const json::value* v) {
    raw_field r;
    if (!v) return r;
    if (const json::string* s = v->if_string()) {
        r.k = raw_field::kind::string;
        r.text = std::string_view(s->data(), s->size());
    } else if (const auto d = as_number(*v)) {
        r.k = raw_field::kind::number;
        r.number = *d;
    } else {
        r.k = raw_field::kind::other;
    }
    return r;
}

result<double> number_field(const json::object& o, std::string_view name) {
    return from_value(o.if_contains(json::string_view(name.data(), name.size()))).as_finite(name);
}

result<std::string_view> string_field(const json::object& o, std::string_view name) {
    return from_value(o.if_contains(json::string_view(name.data(), name.size()))).as_string(name);
}

// The one place that turns the five raw fields into a transaction. Every invalid field is
// reported (failure::errors, wire order): a field of the wrong JSON type gets a neutral valid
// stand-in so that the domain rules still judge the others. The detail names the member id when
// it is invalid, else the first field of a wrong type, else the first rule broken.
result<transaction> transaction_from(const raw_fields& r, transaction_text* as_sent = nullptr) {
    std::array<std::string_view, 3> text{"x", "1970-01-01T00:00:00Z", "BUY"};
    std::array<double, 2> number{0, 0};
    std::array<std::string_view, 5> type_problem{};
    bool wrong_type = false;
    for (std::size_t i = 0; i < r.f.size(); ++i) {
        type_problem[i] = i < text.size() ? r.f[i].string_problem() : r.f[i].number_problem();
        if (!type_problem[i].empty()) wrong_type = true;
        else if (i < text.size()) text[i] = r.f[i].text;
        else number[i - text.size()] = r.f[i].number;
    }
    auto t = make_transaction(text[0], text[1], text[2], number[0], number[1]);
    if (t && !wrong_type) {
        if (as_sent) *as_sent = transaction_text{std::string(text[1]), std::string(text[2])};
        return t;
    }
    std::vector<field_problem> problems;
    std::size_t first = 0;
    bool first_is_type = false;
    for (std::size_t i = 0; i < r.f.size(); ++i) {
        const std::string name(raw_fields::names[i]);
        if (!type_problem[i].empty()) {
            if (!first_is_type && !(i > 0 && !problems.empty() && problems.front().field == field::member_id)) {
                first = problems.size();
                first_is_type = true;
            }
            problems.push_back({name, std::string(type_problem[i])});
        } else if (!t) {
            for (const field_problem& p : t.error().errors)
                if (p.field == name) problems.push_back(p);
        }
    }
    return invalid_fields(std::move(problems), first);
}

result<transaction> transaction_from(const json::value& v, transaction_text* as_sent = nullptr) {
    const json::object* o = as_object(v);
    if (!o) return field_error("body", "must be a JSON object");
    raw_fields r;
    for (std::size_t i = 0; i < raw_fields::names.size(); ++i)
        r.f[i] = from_value(o->if_contains(json::string_view(raw_fields::names[i].data(), raw_fields::names[i].size())));
    return transaction_from(r, as_sent);
}

// Decodes a history array in one pass without building a DOM: member-data histories grow with
// every transaction and are fetched on every request. Only the five contract fields of each
// element are kept; anything deeper is skipped. Duplicate keys: the last wins, as in
// json::object. Every element goes through the same transaction_from as a single transaction.
struct history_handler {
    static constexpr std::size_t max_object_size = json::object::max_size();
    static constexpr std::size_t max_array_size = json::array::max_size();
    static constexpr std::size_t max_key_size = json::string::max_size();
    static constexpr std::size_t max_string_size = json::string::max_size();

    decoded_history out;
    bool top_is_array = false;
    std::size_t depth = 0;        // containers open: 1 inside the array, 2 inside an element object
    bool element_is_object = false;
    int field = -1;               // slot named by the current key of an element object, or -1
    raw_fields fields;
    std::array<std::string, 3> strings;  // storage behind the three string slots (the parser's views are transient)
    std::string part;             // key, string or number text split across parser callbacks
    std::size_t index = 0;

    void element_done() {
        result<transaction> t = element_is_object ? transaction_from(fields)
                                                  : result<transaction>(field_error("body", "must be a JSON object"));
        if (t) {
            out.items.push_back(std::move(t).value());
        } else {
            ++out.skipped;
            if (out.skip_reasons.size() < max_skip_reasons)
                out.skip_reasons.push_back("entry " + std::to_string(index) + ": " + t.error().detail);
        }
        ++index;
    }
    // A scalar or the start of a container at the current depth.
    void value(raw_field v) {
        if (depth == 1) {  // a scalar element
            element_is_object = false;
            element_done();
        } else if (depth == 2 && field >= 0) {
            fields.f[static_cast<std::size_t>(field)] = v;
            field = -1;
        }
    }
    void number_value(double d) {
        raw_field v;
        v.k = raw_field::kind::number;
        v.number = d;
        value(v);
    }
    void open_container(bool is_object) {
        if (depth == 0) top_is_array = !is_object;
        else if (depth == 1) {
            element_is_object = is_object;
            fields = raw_fields{};
        } else if (depth == 2 && field >= 0) {
            value(raw_field{raw_field::kind::other, {}, 0});
        }
        ++depth;
    }
    void close_container() {
        if (--depth == 1) element_done();
    }

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_object_begin(json::error_code&) { return open_container(true), true; }
    bool on_object_end(std::size_t, json::error_code&) { return close_container(), true; }
    bool on_array_begin(json::error_code&) { return open_container(false), true; }
    bool on_array_end(std::size_t, json::error_code&) { return close_container(), true; }
    bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
        if (depth == 2) part.append(s.data(), s.size());
        return true;
    }
    bool on_key(json::string_view s, std::size_t, json::error_code&) {
        if (depth == 2) {
            part.append(s.data(), s.size());
            field = raw_fields::index(part);
            part.clear();
        }
        return true;
    }
    bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
        if (depth == 2 && field >= 0) part.append(s.data(), s.size());
        return true;
    }
    bool on_string(json::string_view s, std::size_t, json::error_code&) {
        raw_field v{raw_field::kind::string, {}, 0};
        if (depth == 2 && field >= 0 && field < 3) {
            std::string& store = strings[static_cast<std::size_t>(field)];
            store.assign(part);
            store.append(s.data(), s.size());
            v.text = store;
        } else if (depth == 2 && field >= 0) {
            v.text = std::string_view(s.data(), s.size());  // a number slot: only the kind matters
        }
        part.clear();
        value(v);
        return true;
    }
    bool on_number_part(json::string_view s, json::error_code&) { return part.append(s.data(), s.size()), true; }
    bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
        part.clear();
        return number_value(static_cast<double>(i)), true;
    }
    bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
        part.clear();
        return number_value(static_cast<double>(u)), true;
    }
    bool on_double(double d, json::string_view s, json::error_code&) { return number_value(exact_decimal(part, s, d)), true; }
    bool on_bool(bool, json::error_code&) { return value(raw_field{raw_field::kind::other, {}, 0}), true; }
    bool on_null(json::error_code&) { return value(raw_field{raw_field::kind::other, {}, 0}), true; }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }
};

}  // namespace

result<transaction> decode_transaction(std::string_view body, transaction_text* as_sent) {
    return with_parsed(body, [as_sent](const json::value& v) { return transaction_from(v, as_sent); });
}

namespace {
// The normalized form, written by hand: it is what the orchestrator persists and logs for every
// offer and what member-data serves for every history entry. Split at the timestamp so that
// member-data can compute the member's part once per history.
void append_entry_prefix(std::string& out, std::string_view member_id) {
    out += R"({"memberId":)";
    append_json_string(out, member_id);
    out += R"(,"lastTransactionUtcTs":")";
}

void append_entry_rest(std::string& out, micros ts, txn_type type, double points, double revenue) {
    char buf[rfc3339_max_length];
    out.append(buf, format_rfc3339_to(ts, buf));
    out += R"(","lastTransactionType":")";
    out += to_string(type);
    out += R"(","lastTransactionPointsBought":)";
    append_json_number(out, points);
    out += R"(,"lastTransactionRevenueUsd":)";
    append_json_number(out, revenue);
    out += '}';
}
}  // namespace

void append_transaction(std::string& out, const transaction& t, const transaction_text* as_sent) {
    if (!as_sent) {
        append_entry_prefix(out, t.member_id);
        append_entry_rest(out, t.ts, t.type, t.points, t.revenue);
        return;
    }
    // The client's own text, which may need escaping.
    json_writer w(out);
    w.begin_object()
        .member(field::member_id, std::string_view(t.member_id))
        .member(field::ts, std::string_view(as_sent->ts))
        .member(field::type, std::string_view(as_sent->type))
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
    json::basic_parser<history_handler> p(json::parse_options{});
    if (auto bad = parse_whole(p, body)) return std::move(*bad);
    if (!p.handler().top_is_array) return field_error("history", "must be a JSON array");
    return std::move(p.handler().out);
}

void append_history_entry(std::string& out, std::string_view entry_prefix, micros ts, txn_type type, double points,
                          double revenue) {
    out += entry_prefix;
    append_entry_rest(out, ts, type, points, revenue);
}

std::string history_entry_prefix(std::string_view member_id) {
    std::string prefix;
    append_entry_prefix(prefix, member_id);
    return prefix;
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
        if (!o) return field_error("body", "must be a JSON object");
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
        std::vector<field_problem> problems;
        for (const auto& [name, dst] : numbers) {
            const raw_field got = from_value(o->if_contains(json::string_view(name.data(), name.size())));
            if (const auto why = got.number_problem(); !why.empty()) problems.push_back({std::string(name), std::string(why)});
            else *dst = got.number;
        }
        const auto days_problem = [&](std::string_view why) { problems.push_back({std::string(k_days), std::string(why)}); };
        const json::value* days = o->if_contains(json::string_view(k_days.data(), k_days.size()));
        if (!days) {
            days_problem("field required");
        } else if (days->is_int64()) {
            f.days_since_last_transaction = days->get_int64();
            if (f.days_since_last_transaction < 0) days_problem("must be >= 0");
        } else if (days->is_uint64()) {
            days_problem("too large");
        } else if (days->is_double() && std::isfinite(days->get_double()) &&
                   std::trunc(days->get_double()) == days->get_double() && std::abs(days->get_double()) < 1e15) {
            f.days_since_last_transaction = static_cast<std::int64_t>(days->get_double());
            if (f.days_since_last_transaction < 0) days_problem("must be >= 0");
        } else {
            days_problem("must be an integer");
        }
        if (!problems.empty()) return invalid_fields(std::move(problems));
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
        if (!o) return field_error("body", "must be a JSON object");
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
        if (!o) return field_error("body", "must be a JSON object");
        auto ats = number_field(*o, "ats_prediction");
        auto resp = number_field(*o, "resp_prediction");
        if (ats && resp) return offer_request{*ats, *resp};
        std::vector<field_problem> problems;
        for (const auto* r : {&ats, &resp})
            if (!*r) problems.push_back(r->error().errors.front());
        return invalid_fields(std::move(problems));
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
        if (!o) return field_error("body", "must be a JSON object");
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

std::string encode_validation_error(std::string_view detail, std::span<const field_problem> errors) {
    std::string out;
    json_writer w(out);
    w.begin_object().member("detail", detail);
    w.key("errors").begin_array();
    for (const field_problem& p : errors)
        w.begin_object().member("field", std::string_view(p.field)).member("message", std::string_view(p.message)).end_object();
    w.end_array();
    w.end_object();
    return out;
}

}  // namespace offerd
