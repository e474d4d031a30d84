// Config helpers.
#include "offerd/app/config.hpp"

namespace offerd {

const char* to_string(role r) noexcept {
    switch (r) {
    case role::orchestrator: return "orchestrator";
    case role::member_data: return "member-data";
    case role::prediction: return "prediction";
    case role::offer_engine: return "offer-engine";
    }
    return "?";
}

result<std::uint8_t> parse_roles(std::string_view text) {
    std::uint8_t roles = 0;
    while (!text.empty()) {
        const std::size_t comma = text.find(',');
        std::string_view name = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
        while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
        if (name.empty()) continue;
        if (name == "all") {
            roles = all_roles;
            continue;
        }
        std::string canonical(name);  // member_data is accepted for member-data
        for (char& c : canonical)
            if (c == '_') c = '-';
        bool found = false;
        for (role r : {role::orchestrator, role::member_data, role::prediction, role::offer_engine}) {
            if (canonical == to_string(r)) {
                roles |= static_cast<std::uint8_t>(r);
                found = true;
            }
        }
        if (!found)
            return fail(errc::invalid_field, "unknown role '" + std::string(name) +
                                                 "' (expected all, orchestrator, member-data, prediction, offer-engine)");
    }
    if (roles == 0) return fail(errc::invalid_field, "no role given");
    return roles;
}

}  // namespace offerd
