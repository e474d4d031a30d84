// Timestamp parsing and formatting. Hand-rolled: std::chrono::parse is missing from g++ 12 and
// we need exact, allocation-free validation with a precise error message.
#include "offerd/domain/timestamp.hpp"

#include <array>

namespace offerd {

std::int64_t days_from_civil(int year, unsigned month, unsigned day) noexcept {
    const int y = year - (month <= 2 ? 1 : 0);
    const int era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return static_cast<std::int64_t>(era) * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

namespace {

struct civil {
    int year;
    unsigned month, day;
};

civil civil_from_days(std::int64_t z) noexcept {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {static_cast<int>(static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0)), m, d};
}

bool is_leap(int y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int y, unsigned m) noexcept {
    static constexpr std::array<unsigned, 12> days{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

class cursor {
public:
    explicit cursor(std::string_view s) : s_(s) {}
    bool done() const noexcept { return i_ == s_.size(); }
    char peek() const noexcept { return done() ? '\0' : s_[i_]; }
    void skip() noexcept { ++i_; }
    bool eat(char c) noexcept {
        if (peek() != c) return false;
        ++i_;
        return true;
    }
    // Exactly n digits.
    bool digits(int n, int& out) noexcept {
        out = 0;
        for (int k = 0; k < n; ++k) {
            const char c = peek();
            if (c < '0' || c > '9') return false;
            out = out * 10 + (c - '0');
            ++i_;
        }
        return true;
    }

private:
    std::string_view s_;
    std::size_t i_ = 0;
};

failure bad(std::string why) { return fail(errc::invalid_field, std::move(why)); }

}  // namespace

result<micros> parse_timestamp(std::string_view text) {
    constexpr const char* expected =
        "expected RFC 3339 (e.g. 2024-03-01T12:00:00Z) or 'YYYY-MM-DD HH:MM:SS[.ffffff]'";
    if (text.empty()) return bad("must not be empty");
    cursor c(text);
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    if (!c.digits(4, year) || !c.eat('-') || !c.digits(2, month) || !c.eat('-') || !c.digits(2, day))
        return bad(expected);
    const char sep = c.peek();
    if (sep != 'T' && sep != 't' && sep != ' ') return bad(expected);
    c.skip();
    if (!c.digits(2, hour) || !c.eat(':') || !c.digits(2, minute) || !c.eat(':') || !c.digits(2, second))
        return bad(expected);
    micros fraction = 0;
    if (c.eat('.')) {
        int n = 0;
        micros scale = 100000;
        while (c.peek() >= '0' && c.peek() <= '9') {
            if (n < 6) fraction += (c.peek() - '0') * scale;
            scale /= 10;
            ++n;
            c.skip();
        }
        if (n == 0 || n > 9) return bad("fractional seconds must have 1 to 9 digits");
    }
    std::int64_t offset_minutes = 0;
    if (c.eat('Z') || c.eat('z')) {
    } else if (c.peek() == '+' || c.peek() == '-') {
        const int sign = c.peek() == '-' ? -1 : 1;
        c.skip();
        int oh = 0, om = 0;
        if (!c.digits(2, oh) || !c.eat(':') || !c.digits(2, om)) return bad("UTC offset must be +HH:MM or -HH:MM");
        if (oh > 23 || om > 59) return bad("UTC offset out of range");
        offset_minutes = sign * (oh * 60 + om);
    }
    if (!c.done()) return bad(expected);
    if (year < 1) return bad("year must be between 0001 and 9999");
    if (month < 1 || month > 12) return bad("month must be between 01 and 12");
    if (day < 1 || static_cast<unsigned>(day) > days_in_month(year, static_cast<unsigned>(month)))
        return bad("day is not valid for that month");
    if (hour > 23) return bad("hour must be between 00 and 23");
    if (minute > 59) return bad("minute must be between 00 and 59");
    if (second > 59) return bad("second must be between 00 and 59");
    const std::int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
    const std::int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    return secs * micros_per_second + fraction;
}

std::int64_t utc_day(micros t) noexcept {
    return t >= 0 ? t / micros_per_day : -((-t + micros_per_day - 1) / micros_per_day);
}

std::size_t format_rfc3339_to(micros t, char* buf, bool always_fraction) noexcept {
    // Hand-formatted: this runs for every history entry served, and snprintf dominated it.
    const std::int64_t day = utc_day(t);
    const micros in_day = t - day * micros_per_day;
    const civil d = civil_from_days(day);
    const auto secs = static_cast<unsigned>(in_day / micros_per_second);
    const auto frac = static_cast<unsigned>(in_day % micros_per_second);
    char* p = buf;
    const auto put = [&p](unsigned v, int width) {
        for (int i = width - 1; i >= 0; --i) {
            p[i] = static_cast<char>('0' + v % 10);
            v /= 10;
        }
        p += width;
    };
    put(static_cast<unsigned>(d.year), 4);
    *p++ = '-';
    put(d.month, 2);
    *p++ = '-';
    put(d.day, 2);
    *p++ = 'T';
    put(secs / 3600, 2);
    *p++ = ':';
    put(secs / 60 % 60, 2);
    *p++ = ':';
    put(secs % 60, 2);
    if (frac != 0 || always_fraction) {
        *p++ = '.';
        put(frac, 6);
    }
    *p++ = 'Z';
    return static_cast<std::size_t>(p - buf);
}

std::string format_rfc3339(micros t, bool always_fraction) {
    char buf[rfc3339_max_length];
    return std::string(buf, format_rfc3339_to(t, buf, always_fraction));
}

}  // namespace offerd
