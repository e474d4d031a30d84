// Transaction validation: the single place that decides what a valid transaction is.
#include "offerd/domain/transaction.hpp"

#include <cmath>

namespace offerd {

const char* to_string(txn_type t) noexcept {
    switch (t) {
    case txn_type::buy: return "BUY";
    case txn_type::gift: return "GIFT";
    case txn_type::redeem: return "REDEEM";
    }
    return "BUY";
}

namespace {
bool iequals(std::string_view a, std::string_view upper) noexcept {
    if (a.size() != upper.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char c = a[i];
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
        if (c != upper[i]) return false;
    }
    return true;
}

std::string quoted(std::string_view s) {
    constexpr std::size_t max_echo = 40;  // never echo a huge value back
    std::string out = "'";
    for (char c : s.substr(0, max_echo)) out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
    if (s.size() > max_echo) out += "...";
    return out + "'";
}
}  // namespace

std::optional<txn_type> parse_txn_type(std::string_view s) noexcept {
    if (iequals(s, "BUY")) return txn_type::buy;
    if (iequals(s, "GIFT")) return txn_type::gift;
    if (iequals(s, "REDEEM")) return txn_type::redeem;
    return std::nullopt;
}

namespace {
// What is wrong with a member id, or "" when it is valid.
std::string member_id_problem(std::string_view id) {
    if (id.empty()) return "must not be empty";
    if (id.size() > max_member_id_length) return "must be at most 64 characters";
    for (char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) return "only letters, digits, '_' and '-' are allowed, got " + quoted(id);
    }
    return {};
}
}  // namespace

result<std::string> validate_member_id(std::string_view id) {
    if (std::string why = member_id_problem(id); !why.empty()) return fail(errc::invalid_field, std::string(field::member_id) + ": " + why);
    return std::string(id);
}

result<transaction> make_transaction(std::string_view member_id, std::string_view ts, std::string_view type,
                                     double points, double revenue) {
    std::vector<field_problem> problems;
    const auto problem = [&](std::string_view name, std::string why) { problems.push_back({std::string(name), std::move(why)}); };
    if (std::string why = member_id_problem(member_id); !why.empty()) problem(field::member_id, std::move(why));
    auto when = parse_timestamp(ts);
    if (!when) problem(field::ts, when.error().detail + ", got " + quoted(ts));
    const auto kind = parse_txn_type(type);
    if (!kind) problem(field::type, "must be BUY, GIFT or REDEEM (any case), got " + quoted(type));
    if (!std::isfinite(points)) problem(field::points, "must be a finite number");
    if (!std::isfinite(revenue)) problem(field::revenue, "must be a finite number");
    else if (revenue < 0) problem(field::revenue, "must be >= 0");
    if (!problems.empty()) return invalid_fields(std::move(problems));
    return transaction{std::string(member_id), *when, *kind, points, revenue};
}

}  // namespace offerd
