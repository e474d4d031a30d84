// JSON writer.
#include "offerd/codec/json_writer.hpp"

#include <array>
#include <charconv>
#include <cmath>

namespace offerd {

void append_json_number(std::string& out, double d) {
    if (!std::isfinite(d)) {
        out += "null";
        return;
    }
    if (d == 0) d = 0;  // no "-0"
    // Shortest round-trip digits, without an exponent where people (and Prometheus clients) write
    // none: 1e-7 <= |d| < 1e21 (as JavaScript does) prints 0.0001 and 1000000, not 1e-04, 1e+06.
    std::array<char, 64> buf{};
    const double magnitude = std::abs(d);
    const bool plain = magnitude == 0 || (magnitude >= 1e-7 && magnitude < 1e21);
    const auto res = plain ? std::to_chars(buf.data(), buf.data() + buf.size(), d, std::chars_format::fixed)
                           : std::to_chars(buf.data(), buf.data() + buf.size(), d);
    out.append(buf.data(), res.ptr);
}

namespace {
// Length of a well-formed UTF-8 sequence starting at s[i] (Unicode table 3-7: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) noexcept {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;
    else if (c == 0xED) n = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;
    else if (c == 0xF4) n = 4, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else return 0;
    if (i + n > s.size()) return 0;
    const auto second = static_cast<unsigned char>(s[i + 1]);
    if (second < lo || second > hi) return 0;
    for (std::size_t k = 2; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
    return n;
}
}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        // Runs of printable ASCII (nearly everything we write) are appended in one piece.
        std::size_t run = i;
        while (run < s.size()) {
            const auto c = static_cast<unsigned char>(s[run]);
            if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
            ++run;
        }
        if (run != i) {
            out.append(s.data() + i, run - i);
            i = run;
            continue;
        }
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
            ++i;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            }
            ++i;
        } else {
            const std::size_t n = utf8_length(s, i);
            if (n == 0) {
                out += "\xEF\xBF\xBD";
                ++i;
            } else {
                out.append(s.substr(i, n));
                i += n;
            }
        }
    }
    out += '"';
}

void json_writer::separate() {
    if (need_comma_) out_ += ',';
    need_comma_ = true;
}

json_writer& json_writer::open(char c) {
    separate();
    out_ += c;
    need_comma_ = false;
    return *this;
}

json_writer& json_writer::close(char c) {
    out_ += c;
    need_comma_ = true;
    return *this;
}

json_writer& json_writer::key(std::string_view k) {
    separate();
    append_json_string(out_, k);
    out_ += ':';
    need_comma_ = false;
    return *this;
}

json_writer& json_writer::value(std::string_view s) {
    separate();
    append_json_string(out_, s);
    return *this;
}

json_writer& json_writer::value(double d) {
    separate();
    append_json_number(out_, d);
    return *this;
}

json_writer& json_writer::value(std::int64_t i) {
    separate();
    out_ += std::to_string(i);
    return *this;
}

json_writer& json_writer::value(std::uint64_t i) {
    separate();
    out_ += std::to_string(i);
    return *this;
}

json_writer& json_writer::value(bool b) {
    separate();
    out_ += b ? "true" : "false";
    return *this;
}

json_writer& json_writer::null() {
    separate();
    out_ += "null";
    return *this;
}

json_writer& json_writer::raw(std::string_view json) {
    separate();
    out_ += json;
    return *this;
}

}  // namespace offerd
