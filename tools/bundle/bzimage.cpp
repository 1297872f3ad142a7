// Linux bzImages. A distribution ships its kernel as a bzImage: real-mode setup code, then a small
// decompressor, then the vmlinux ELF compressed. The hypervisor loads ELF images only (it has no
// decompressor, and a PV kernel never runs the bzImage's own), so the tool unwraps the ELF here
// and everything after — parse_image, plan(), the bundle — sees that ELF.
//
// Where the payload is comes from the x86 boot protocol's setup header (Linux's
// Documentation/arch/x86/boot.rst): "HdrS" at 0x202, the protocol version at 0x206, setup_sects
// at 0x1f1 (0 meaning 4) giving the size of the real-mode part in 512-byte sectors after the boot
// sector, and, from version 2.08, payload_offset and payload_length at 0x248 and 0x24c, the
// payload's place relative to the protected-mode part. The compression is known by its magic.
//
// The file is untrusted: every range is checked against the file, and decompression stops at
// max_unwrapped_kernel_bytes and at the decoders' memory limit, whatever the stream claims.
#include <algorithm>
#include <memory>

#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include "bundle_tool.hpp"

namespace pvkit_bundle {
namespace {

constexpr std::size_t setup_sects_offset = 0x1f1;
constexpr std::size_t header_magic_offset = 0x202;
constexpr std::size_t version_offset = 0x206;
constexpr std::size_t payload_offset_offset = 0x248;
constexpr std::size_t payload_length_offset = 0x24c;
constexpr std::size_t setup_header_end = 0x250;  // through payload_length
constexpr std::uint16_t first_version_with_payload = 0x0208;
constexpr std::size_t sector_size = 512;

// An lzma-alone header names its own dictionary size, up to 4 GiB; this caps what liblzma may
// allocate. Linux's xz payloads use 32 MiB dictionaries and its lzma payloads 64 MiB at most.
constexpr std::uint64_t max_decoder_memory = std::uint64_t{128} << 20;

std::uint32_t read_le(std::span<const std::byte> file, std::size_t offset, std::size_t size) {
    std::uint32_t value = 0;
    for (std::size_t i = size; i-- > 0;)
        value = value << 8 | std::to_integer<std::uint32_t>(file[offset + i]);
    return value;
}

bool starts_with(std::span<const std::byte> bytes, std::initializer_list<std::uint8_t> magic) {
    if (bytes.size() < magic.size())
        return false;
    std::size_t i = 0;
    for (const std::uint8_t byte : magic)
        if (bytes[i++] != std::byte{byte})
            return false;
    return true;
}

// Magics as Linux's build writes them (scripts/Makefile.lib): lz4 is the legacy frame format,
// lzma the lzma-alone format, whose first bytes are the properties byte 0x5d and the low bytes
// of a dictionary size that is a multiple of 64 KiB.
std::optional<Compression> compression_of(std::span<const std::byte> payload) {
    if (starts_with(payload, {0x1f, 0x8b}))
        return Compression::gzip;
    if (starts_with(payload, {0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00}))
        return Compression::xz;
    if (starts_with(payload, {0x28, 0xb5, 0x2f, 0xfd}))
        return Compression::zstd;
    if (starts_with(payload, {0x5d, 0x00, 0x00}))
        return Compression::lzma;
    if (starts_with(payload, {'B', 'Z', 'h'}))
        return Compression::bzip2;
    if (starts_with(payload, {0x02, 0x21, 0x4c, 0x18}))
        return Compression::lz4;
    if (starts_with(payload, {0x89, 0x4c, 0x5a, 0x4f}))
        return Compression::lzo;
    return std::nullopt;
}

std::string first_bytes(std::span<const std::byte> bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string text;
    for (std::size_t i = 0; i < std::min<std::size_t>(bytes.size(), 8); ++i) {
        const auto byte = std::to_integer<unsigned>(bytes[i]);
        text += (i == 0 ? "" : " ") + std::string{digits[byte >> 4], digits[byte & 15]};
    }
    return text.empty() ? "nothing" : text;
}

// The decompressed bytes, in a buffer that doubles as the decoder fills it, up to one byte more
// than max_unwrapped_kernel_bytes: a stream that reaches that byte is too large, however it ends,
// and one that ends exactly at the limit is not.
class Output {
public:
    explicit Output(std::size_t compressed_size)
        : bytes_(std::min(capacity, std::max(compressed_size * 4, std::size_t{1} << 20))) {}

    // Room for the decoder after the `used` bytes it has written; false when full at capacity.
    bool make_room(std::size_t used) {
        if (used < bytes_.size())
            return true;
        if (bytes_.size() == capacity)
            return false;
        bytes_.resize(std::min(capacity, bytes_.size() * 2));
        return true;
    }
    std::byte* at(std::size_t used) { return bytes_.data() + used; }
    std::size_t room(std::size_t used) const { return bytes_.size() - used; }
    Bytes take(std::size_t used) {
        bytes_.resize(used);
        return std::move(bytes_);
    }

private:
    static constexpr std::size_t capacity = max_unwrapped_kernel_bytes + 1;
    Bytes bytes_;
};

// One payload being unwrapped, and the refusals that name it.
struct Payload {
    std::string file;
    Compression compression;
    std::span<const std::byte> bytes;

    [[noreturn]] void refuse(const std::string& why) const {
        throw Refusal(file + ": a bzImage whose " + std::string(compression_name(compression)) + " payload " + why);
    }
    [[noreturn]] void refuse_truncated() const { refuse("is truncated: its stream does not end within the payload"); }
    [[noreturn]] void refuse_corrupt(const std::string& reason) const { refuse("is corrupt: " + reason); }
    [[noreturn]] void refuse_too_large() const {
        refuse("decompresses to more than " + std::to_string(max_unwrapped_kernel_bytes >> 20) + " MiB");
    }
};

// zlib, with the gzip wrapper only (16 + MAX_WBITS). The gzip trailer ends the stream.
Bytes inflate_gzip(const Payload& payload) {
    z_stream stream{};
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK)
        throw std::runtime_error("zlib cannot start a decoder");
    Output output(payload.bytes.size());
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(payload.bytes.data()));
    stream.avail_in = static_cast<uInt>(payload.bytes.size());
    for (;;) {
        if (!output.make_room(stream.total_out)) {
            inflateEnd(&stream);
            payload.refuse_too_large();
        }
        stream.next_out = reinterpret_cast<Bytef*>(output.at(stream.total_out));
        stream.avail_out = static_cast<uInt>(output.room(stream.total_out));  // at most 256 MiB + 1
        const int result = inflate(&stream, Z_NO_FLUSH);
        if (result == Z_STREAM_END)
            break;
        if (result == Z_OK)
            continue;
        const std::string reason = stream.msg != nullptr ? stream.msg : "zlib error " + std::to_string(result);
        inflateEnd(&stream);
        if (result == Z_BUF_ERROR)  // no progress with room to write: the input ran out
            payload.refuse_truncated();
        payload.refuse_corrupt(reason);
    }
    const std::size_t used = stream.total_out;
    inflateEnd(&stream);
    return output.take(used);
}

std::string lzma_reason(lzma_ret result) {
    switch (result) {
    case LZMA_FORMAT_ERROR: return "not in the format its magic says";
    case LZMA_OPTIONS_ERROR: return "options liblzma does not support";
    case LZMA_DATA_ERROR: return "compressed data is corrupt";
    case LZMA_MEMLIMIT_ERROR:
        return "it needs more than " + std::to_string(max_decoder_memory >> 20) + " MiB to decompress";
    default: return "liblzma error " + std::to_string(static_cast<int>(result));
    }
}

// liblzma, for xz (one stream: the size Linux's build appends after it is not read) and for
// lzma-alone, whose end is its end marker or the size in its header.
Bytes decode_lzma(const Payload& payload) {
    lzma_stream stream = LZMA_STREAM_INIT;
    const lzma_ret started = payload.compression == Compression::xz
                                 ? lzma_stream_decoder(&stream, max_decoder_memory, 0)
                                 : lzma_alone_decoder(&stream, max_decoder_memory);
    if (started != LZMA_OK)
        throw std::runtime_error("liblzma cannot start a decoder");
    Output output(payload.bytes.size());
    stream.next_in = reinterpret_cast<const std::uint8_t*>(payload.bytes.data());
    stream.avail_in = payload.bytes.size();
    for (;;) {
        if (!output.make_room(stream.total_out)) {
            lzma_end(&stream);
            payload.refuse_too_large();
        }
        stream.next_out = reinterpret_cast<std::uint8_t*>(output.at(stream.total_out));
        stream.avail_out = output.room(stream.total_out);
        const lzma_ret result = lzma_code(&stream, LZMA_RUN);
        if (result == LZMA_STREAM_END)
            break;
        if (result == LZMA_OK)
            continue;
        lzma_end(&stream);
        if (result == LZMA_BUF_ERROR)  // no progress with room to write: the input ran out
            payload.refuse_truncated();
        payload.refuse_corrupt(lzma_reason(result));
    }
    const std::size_t used = stream.total_out;
    lzma_end(&stream);
    return output.take(used);
}

// libzstd, one frame. Its window is bounded by libzstd's default limit (128 MiB).
Bytes decode_zstd(const Payload& payload) {
    const std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> context(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!context)
        throw std::runtime_error("libzstd cannot start a decoder");
    Output output(payload.bytes.size());
    ZSTD_inBuffer in{payload.bytes.data(), payload.bytes.size(), 0};
    std::size_t used = 0;
    for (;;) {
        if (!output.make_room(used))
            payload.refuse_too_large();
        ZSTD_outBuffer out{output.at(used), output.room(used), 0};
        const std::size_t result = ZSTD_decompressStream(context.get(), &out, &in);
        used += out.pos;
        if (ZSTD_isError(result))
            payload.refuse_corrupt(ZSTD_getErrorName(result));
        if (result == 0)  // the frame is decoded and flushed
            break;
        // Room left means everything decodable was written: with the input gone, it ran out.
        if (in.pos == in.size && out.pos < out.size)
            payload.refuse_truncated();
    }
    return output.take(used);
}

}  // namespace

std::string_view compression_name(Compression compression) {
    switch (compression) {
    case Compression::gzip: return "gzip";
    case Compression::xz: return "xz";
    case Compression::lzma: return "lzma";
    case Compression::zstd: return "zstd";
    case Compression::bzip2: return "bzip2";
    case Compression::lz4: return "lz4";
    case Compression::lzo: return "lzo";
    }
    return "?";
}

std::optional<BzImagePayload> unwrap_bzimage(const std::filesystem::path& path, Bytes& kernel) {
    const std::span<const std::byte> file{kernel};
    // An ELF file is never taken for a bzImage, whatever its bytes at 0x202 hold.
    if (starts_with(file, {0x7f, 'E', 'L', 'F'}) || file.size() < header_magic_offset ||
        !starts_with(file.subspan(header_magic_offset), {'H', 'd', 'r', 'S'}))
        return std::nullopt;
    const std::string where = path.string() + ": a bzImage";
    if (file.size() < setup_header_end)
        throw Refusal(where + " that ends inside its setup header");
    if (const std::uint32_t version = read_le(file, version_offset, 2); version < first_version_with_payload)
        throw Refusal(where + " of boot protocol " + std::to_string(version >> 8) + "." +
                      (version % 256 < 10 ? "0" : "") + std::to_string(version % 256) +
                      ", which does not say where its payload is (2.08 or later does)");

    const std::uint32_t setup_sects = read_le(file, setup_sects_offset, 1);
    const std::uint64_t protected_mode_start = ((setup_sects == 0 ? 4 : setup_sects) + 1) * sector_size;
    const std::uint64_t offset = protected_mode_start + read_le(file, payload_offset_offset, 4);
    const std::uint64_t length = read_le(file, payload_length_offset, 4);
    if (offset > file.size() || length > file.size() - offset)
        throw Refusal(where + " whose payload (" + std::to_string(length) + " bytes at offset " +
                      std::to_string(offset) + ") lies outside the file (" + std::to_string(file.size()) + " bytes)");
    const std::span<const std::byte> bytes = file.subspan(offset, length);

    const std::optional<Compression> compression = compression_of(bytes);
    if (!compression)
        throw Refusal(where + " whose payload is in no compression format pvkit-bundle knows (it starts " +
                      first_bytes(bytes) + ")");
    const Payload payload{path.string(), *compression, bytes};
    Bytes elf;
    switch (*compression) {
    case Compression::gzip: elf = inflate_gzip(payload); break;
    case Compression::xz:
    case Compression::lzma: elf = decode_lzma(payload); break;
    case Compression::zstd: elf = decode_zstd(payload); break;
    case Compression::bzip2:
    case Compression::lz4:
    case Compression::lzo:
        throw Refusal(where + " compressed with " + std::string(compression_name(*compression)) +
                      ", which pvkit-bundle cannot unwrap (gzip, xz, lzma and zstd it can)");
    }
    if (elf.size() > max_unwrapped_kernel_bytes)  // the stream ended on the byte past the limit
        payload.refuse_too_large();
    if (!starts_with(elf, {0x7f, 'E', 'L', 'F'}))
        payload.refuse("is not an ELF file once decompressed (it starts " + first_bytes(elf) + ")");
    kernel = std::move(elf);
    return BzImagePayload{*compression, length};
}

}  // namespace pvkit_bundle
