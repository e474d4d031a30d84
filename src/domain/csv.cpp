// CSV reading. Hand-rolled because neither Boost nor Debian's standard packages offer an
// RFC 4180 reader, and what we need (line numbers, BOM, CRLF, quoted line breaks) is small.
#include "offerd/domain/csv.hpp"

#include <charconv>
#include <cmath>

namespace offerd {

namespace {

enum class parsed { record, end, need_more, error };

// One record from text[pos...]. With final false, input ending before the record is complete gives
// need_more and leaves pos and line where they were; with final true the end of text ends it.
parsed parse_record(std::string_view text, std::size_t& pos, std::size_t& line, bool final, csv_record& out,
                    failure& error) {
    const std::size_t pos0 = pos, line0 = line;
    const auto more = [&] {
        pos = pos0;
        line = line0;
        return parsed::need_more;
    };
    out.fields.clear();
    // Skip blank lines (a record of one empty field is not a row).
    while (pos < text.size() && (text[pos] == '\n' || text[pos] == '\r')) {
        if (text[pos] == '\n') ++line;
        ++pos;
    }
    if (pos >= text.size()) return final ? parsed::end : more();
    out.line = line;
    std::string field;
    for (;;) {
        field.clear();
        if (pos < text.size() && text[pos] == '"') {
            ++pos;
            for (;;) {
                if (pos >= text.size()) {
                    if (!final) return more();
                    error = fail(errc::invalid_field, "line " + std::to_string(out.line) + ": unterminated quoted field");
                    pos = text.size();
                    return parsed::error;
                }
                const char c = text[pos++];
                if (c == '"') {
                    if (pos >= text.size() && !final) return more();
                    if (pos < text.size() && text[pos] == '"') {
                        field += '"';
                        ++pos;
                    } else {
                        break;
                    }
                } else {
                    if (c == '\n') ++line;
                    field += c;
                }
            }
            if (pos < text.size() && text[pos] != ',' && text[pos] != '\n' && text[pos] != '\r') {
                error = fail(errc::invalid_field, "line " + std::to_string(line) + ": unexpected character after closing quote");
                pos = text.size();
                return parsed::error;
            }
        } else {
            while (pos < text.size() && text[pos] != ',' && text[pos] != '\n' && text[pos] != '\r') {
                if (text[pos] == '"') {
                    error = fail(errc::invalid_field, "line " + std::to_string(line) + ": quote inside an unquoted field");
                    pos = text.size();
                    return parsed::error;
                }
                field += text[pos++];
            }
        }
        if (pos >= text.size() && !final) return more();
        out.fields.push_back(field);
        if (pos >= text.size()) return parsed::record;
        const char c = text[pos++];
        if (c == ',') continue;
        if (c == '\r') {
            if (pos >= text.size() && !final) return more();
            if (pos < text.size() && text[pos] == '\n') ++pos;
        }
        ++line;
        return parsed::record;
    }
}

}  // namespace

csv_reader::csv_reader(std::string_view text) : text_(text) {
    if (text_.starts_with("\xEF\xBB\xBF")) pos_ = 3;
}

bool csv_reader::next(csv_record& out, failure& error) {
    return parse_record(text_, pos_, line_, true, out, error) == parsed::record;
}

csv_stream_reader::csv_stream_reader(std::size_t max_record_bytes) : max_record_bytes_(max_record_bytes) {}

void csv_stream_reader::feed(std::string_view bytes) {
    buffer_.erase(0, pos_);
    pos_ = 0;
    consumed_ = {};
    buffer_.append(bytes);
}

csv_stream_reader::status csv_stream_reader::next(csv_record& out, failure& error) {
    if (failed_) {
        error = error_;
        return status::error;
    }
    if (!started_) {
        constexpr std::string_view bom = "\xEF\xBB\xBF";
        if (buffer_.size() < bom.size() && !final_ && std::string_view(bom).starts_with(buffer_)) return status::need_more;
        started_ = true;
        if (std::string_view(buffer_).starts_with(bom)) pos_ = bom.size();
    }
    const std::size_t from = pos_;
    switch (parse_record(buffer_, pos_, line_, final_, out, error)) {
    case parsed::record: consumed_ = std::string_view(buffer_).substr(from, pos_ - from); return status::record;
    case parsed::end: return status::end;
    case parsed::need_more:
        if (buffer_.size() - pos_ <= max_record_bytes_) return status::need_more;
        error = fail(errc::invalid_field, "line " + std::to_string(line_) + ": record longer than " +
                                              std::to_string(max_record_bytes_) + " bytes");
        break;
    case parsed::error: break;
    }
    failed_ = true;
    error_ = error;
    return status::error;
}

namespace {
bool iequal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

constexpr std::array<std::string_view, 5> column_names{field::member_id, field::ts, field::type, field::points,
                                                       field::revenue};
}  // namespace

bool parse_number(std::string_view text, double& out) noexcept {
    text = trim(text);
    if (!text.empty() && text.front() == '+') {
        text.remove_prefix(1);
        if (!text.empty() && text.front() == '-') return false;  // one sign at most
    }
    if (text.empty()) return false;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && ptr == text.data() + text.size() && std::isfinite(out);
}

result<csv_columns> map_csv_header(const std::vector<std::string>& header) {
    csv_columns cols;
    cols.width = header.size();
    std::string missing;
    for (std::size_t k = 0; k < column_names.size(); ++k) {
        bool found = false;
        for (std::size_t i = 0; i < header.size() && !found; ++i) {
            if (iequal(trim(header[i]), column_names[k])) {
                cols.index[k] = i;
                found = true;
            }
        }
        if (!found) missing += (missing.empty() ? "" : ", ") + std::string(column_names[k]);
    }
    if (!missing.empty()) return fail(errc::invalid_field, "CSV header is missing column(s): " + missing);
    return cols;
}

result<transaction> csv_row_to_transaction(const csv_record& rec, const csv_columns& cols) {
    if (rec.fields.size() != cols.width)
        return fail(errc::invalid_field, "expected " + std::to_string(cols.width) + " fields, got " +
                                             std::to_string(rec.fields.size()));
    const auto get = [&](std::size_t k) { return trim(rec.fields[cols.index[k]]); };
    double points = 0, revenue = 0;
    const bool points_ok = parse_number(get(3), points);
    const bool revenue_ok = parse_number(get(4), revenue);
    // Report the first offending field in column order: the text fields (validated with
    // neutral numbers), then points, then revenue (its range is checked by make_transaction).
    if (auto t = make_transaction(get(0), get(1), get(2), 0.0, 0.0); !t) return t;
    if (!points_ok) return fail(errc::invalid_field, std::string(field::points) + ": not a finite number");
    if (!revenue_ok) return fail(errc::invalid_field, std::string(field::revenue) + ": not a finite number");
    return make_transaction(get(0), get(1), get(2), points, revenue);
}

}  // namespace offerd
