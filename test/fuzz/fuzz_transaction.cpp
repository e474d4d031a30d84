// libFuzzer target: transaction JSON decoding and validation. Invariant: whatever decodes,
// re-encodes to JSON that decodes to the same transaction (the normalized form is a fixpoint).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "offerd/codec/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    auto t = offerd::decode_transaction(body);
    if (!t) {
        if (t.error().detail.empty()) std::abort();  // every rejection must say why
        return 0;
    }
    const std::string again = offerd::encode_transaction(*t);
    auto back = offerd::decode_transaction(again);
    if (!back || !(*back == *t)) std::abort();
    (void)offerd::decode_history(body);
    (void)offerd::decode_features(body);
    return 0;
}
