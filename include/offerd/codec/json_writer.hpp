// Appends JSON to a string. Hand-rolled on purpose: Boost 1.81's serializer prints doubles as
// `2.5E0`; std::to_chars gives the shortest round-trip form people expect (`2.5`, `100`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace offerd {

class json_writer {
public:
    explicit json_writer(std::string& out) : out_(out) {}

    json_writer& begin_object() { return open('{'); }
    json_writer& end_object() { return close('}'); }
    json_writer& begin_array() { return open('['); }
    json_writer& end_array() { return close(']'); }

    json_writer& key(std::string_view k);
    json_writer& value(std::string_view s);
    json_writer& value(const char* s) { return value(std::string_view(s)); }
    json_writer& value(double d);  // non-finite becomes null (JSON has no NaN)
    json_writer& value(std::int64_t i);
    json_writer& value(std::uint64_t i);
    json_writer& value(int i) { return value(static_cast<std::int64_t>(i)); }
    json_writer& value(bool b);
    json_writer& null();
    // Inserts already-serialized JSON as a value.
    json_writer& raw(std::string_view json);

    template <class T>
    json_writer& member(std::string_view k, const T& v) {
        key(k);
        return value(v);
    }

private:
    json_writer& open(char c);
    json_writer& close(char c);
    void separate();

    std::string& out_;
    bool need_comma_ = false;
};

// Appends s as a JSON string literal (quotes included), escaping control characters and
// replacing invalid UTF-8 bytes with U+FFFD so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);
// Shortest round-trip decimal, without an exponent for 1e-7 <= |d| < 1e21; "null" for non-finite.
void append_json_number(std::string& out, double d);

}  // namespace offerd
