// libFuzzer target: the CSV reader and row validation. Invariants: reading terminates, line
// numbers never go backwards, and every valid row re-validates after normalization.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "offerd/codec/wire.hpp"
#include "offerd/domain/csv.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    offerd::csv_reader reader(text);
    offerd::csv_record rec;
    offerd::failure err;
    if (!reader.next(rec, err)) return 0;
    auto cols = offerd::map_csv_header(rec.fields);
    std::size_t last_line = rec.line;
    while (reader.next(rec, err)) {
        if (rec.line < last_line) std::abort();
        last_line = rec.line;
        if (!cols) continue;
        auto t = offerd::csv_row_to_transaction(rec, *cols);
        if (t && !offerd::decode_transaction(offerd::encode_transaction(*t))) std::abort();
    }
    return 0;
}
