// printf-style formatting without libc: the conversions, flags and contract in pvkit/format.h.
#include <pvkit/format.h>

#include <cstdint>

namespace {

struct Output {
    pvk_format_sink sink;
    void* context;
    std::size_t count = 0;

    void write(const char* text, std::size_t length) {
        if (length == 0)
            return;
        sink(context, text, length);
        count += length;
    }
    void repeat(char c, std::size_t times) {
        char run[32];
        for (char& slot : run)
            slot = c;
        while (times > 0) {
            const std::size_t piece = times < sizeof run ? times : sizeof run;
            write(run, piece);
            times -= piece;
        }
    }
};

struct Spec {
    bool left = false;         // '-'
    bool zero = false;         // '0'
    std::size_t width = 0;
    int precision = -1;        // -1: none given
    enum class Length { plain, l, ll, z } length = Length::plain;
};

std::size_t text_length(const char* text, int precision) {
    std::size_t length = 0;
    while ((precision < 0 || length < static_cast<std::size_t>(precision)) && text[length] != '\0')
        ++length;
    return length;
}

// A field: optional sign/prefix, zero padding to the precision, the digits; padded to the width.
void emit_field(Output& out, const Spec& spec, const char* prefix, std::size_t prefix_length, const char* digits,
                std::size_t digit_count, std::size_t precision_zeros) {
    const std::size_t body = prefix_length + precision_zeros + digit_count;
    const std::size_t padding = spec.width > body ? spec.width - body : 0;
    // '0' pads after the sign with zeros, unless '-' or an integer precision says otherwise.
    const bool zero_pad = spec.zero && !spec.left && spec.precision < 0;
    if (!spec.left && !zero_pad)
        out.repeat(' ', padding);
    out.write(prefix, prefix_length);
    if (zero_pad)
        out.repeat('0', padding);
    out.repeat('0', precision_zeros);
    out.write(digits, digit_count);
    if (spec.left)
        out.repeat(' ', padding);
}

void emit_integer(Output& out, const Spec& spec, std::uint64_t magnitude, bool negative, unsigned base, bool upper,
                  const char* prefix_text = nullptr) {
    char digits[24];
    std::size_t count = 0;
    const char* alphabet = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    if (!(magnitude == 0 && spec.precision == 0)) {  // C: precision 0 prints no digits for zero
        do {
            digits[sizeof digits - 1 - count++] = alphabet[magnitude % base];
            magnitude /= base;
        } while (magnitude != 0);
    }
    const std::size_t precision_zeros =
        spec.precision > 0 && static_cast<std::size_t>(spec.precision) > count ? spec.precision - count : 0;
    const char* prefix = negative ? "-" : (prefix_text != nullptr ? prefix_text : "");
    emit_field(out, spec, prefix, text_length(prefix, -1), digits + sizeof digits - count, count, precision_zeros);
}

std::int64_t take_signed(const Spec& spec, va_list* arguments) {
    switch (spec.length) {
    case Spec::Length::l: return va_arg(*arguments, long);
    case Spec::Length::ll: return va_arg(*arguments, long long);
    case Spec::Length::z: return static_cast<std::int64_t>(va_arg(*arguments, std::size_t));  // ssize_t's bits
    case Spec::Length::plain: break;
    }
    return va_arg(*arguments, int);
}

std::uint64_t take_unsigned(const Spec& spec, va_list* arguments) {
    switch (spec.length) {
    case Spec::Length::l: return va_arg(*arguments, unsigned long);
    case Spec::Length::ll: return va_arg(*arguments, unsigned long long);
    case Spec::Length::z: return va_arg(*arguments, std::size_t);
    case Spec::Length::plain: break;
    }
    return va_arg(*arguments, unsigned);
}

// Reads a conversion after its '%'; returns the character after it, or null at an unknown one.
const char* parse_spec(const char* p, Spec& spec, va_list* arguments) {
    for (;; ++p) {
        if (*p == '-')
            spec.left = true;
        else if (*p == '0')
            spec.zero = true;
        else
            break;
    }
    if (*p == '*') {
        const int width = va_arg(*arguments, int);
        spec.left |= width < 0;  // C: a negative '*' width is '-' with its magnitude
        spec.width = width < 0 ? 0u - static_cast<unsigned>(width) : static_cast<unsigned>(width);
        ++p;
    } else {
        while (*p >= '0' && *p <= '9')
            spec.width = spec.width * 10 + static_cast<std::size_t>(*p++ - '0');
    }
    if (*p == '.') {
        ++p;
        if (*p == '*') {
            const int precision = va_arg(*arguments, int);
            spec.precision = precision < 0 ? -1 : precision;  // C: negative means none
            ++p;
        } else {
            spec.precision = 0;
            while (*p >= '0' && *p <= '9')
                spec.precision = spec.precision * 10 + (*p++ - '0');
        }
    }
    if (*p == 'l') {
        ++p;
        spec.length = Spec::Length::l;
        if (*p == 'l') {
            ++p;
            spec.length = Spec::Length::ll;
        }
    } else if (*p == 'z') {
        ++p;
        spec.length = Spec::Length::z;
    }
    return p;
}

void format_to(Output& out, const char* format, va_list* arguments) {
    const char* p = format;
    while (*p != '\0') {
        const char* literal = p;
        while (*p != '\0' && *p != '%')
            ++p;
        out.write(literal, static_cast<std::size_t>(p - literal));
        if (*p == '\0')
            break;
        const char* conversion_start = p++;
        Spec spec;
        p = parse_spec(p, spec, arguments);
        switch (*p) {
        case '%':
            out.write("%", 1);
            break;
        case 'd':
        case 'i': {
            const std::int64_t value = take_signed(spec, arguments);
            const std::uint64_t magnitude = value < 0 ? 0 - static_cast<std::uint64_t>(value) : static_cast<std::uint64_t>(value);
            emit_integer(out, spec, magnitude, value < 0, 10, false);
            break;
        }
        case 'u': emit_integer(out, spec, take_unsigned(spec, arguments), false, 10, false); break;
        case 'x': emit_integer(out, spec, take_unsigned(spec, arguments), false, 16, false); break;
        case 'X': emit_integer(out, spec, take_unsigned(spec, arguments), false, 16, true); break;
        case 'p': {
            const void* pointer = va_arg(*arguments, void*);
            if (pointer == nullptr) {
                Spec text = spec;
                text.precision = -1;
                emit_field(out, text, "", 0, "(nil)", 5, 0);
            } else {
                emit_integer(out, spec, reinterpret_cast<std::uintptr_t>(pointer), false, 16, false, "0x");
            }
            break;
        }
        case 's': {
            const char* text = va_arg(*arguments, const char*);
            if (text == nullptr)
                text = "(null)";
            Spec field = spec;
            field.zero = false;
            field.precision = -1;
            emit_field(out, field, "", 0, text, text_length(text, spec.precision), 0);
            break;
        }
        case 'c': {
            const char c = static_cast<char>(va_arg(*arguments, int));
            Spec field = spec;
            field.zero = false;
            field.precision = -1;
            emit_field(out, field, "", 0, &c, 1, 0);
            break;
        }
        default:  // unknown or truncated: print it as written, and go on after it
            if (*p == '\0') {
                out.write(conversion_start, static_cast<std::size_t>(p - conversion_start));
                continue;
            }
            out.write(conversion_start, static_cast<std::size_t>(p + 1 - conversion_start));
            break;
        }
        ++p;
    }
}

struct BufferSink {
    char* buffer;
    std::size_t capacity;  // bytes for text, the NUL excluded
    std::size_t used = 0;

    static void write(void* context, const char* text, std::size_t length) {
        auto* self = static_cast<BufferSink*>(context);
        for (std::size_t i = 0; i < length && self->used < self->capacity; ++i)
            self->buffer[self->used++] = text[i];
    }
};

int clamp_count(std::size_t count) { return count > 0x7fffffff ? 0x7fffffff : static_cast<int>(count); }

}  // namespace

extern "C" int pvk_vformat(pvk_format_sink sink, void* context, const char* format, va_list arguments) {
    Output out{sink, context};
    va_list copy;
    va_copy(copy, arguments);
    format_to(out, format, &copy);
    va_end(copy);
    return clamp_count(out.count);
}

extern "C" int pvk_format(pvk_format_sink sink, void* context, const char* format, ...) {
    va_list arguments;
    va_start(arguments, format);
    const int count = pvk_vformat(sink, context, format, arguments);
    va_end(arguments);
    return count;
}

extern "C" int pvk_vsnprintf(char* buffer, std::size_t size, const char* format, va_list arguments) {
    BufferSink sink{buffer, size == 0 ? 0 : size - 1};
    const int count = pvk_vformat(BufferSink::write, &sink, format, arguments);
    if (size != 0)
        buffer[sink.used] = '\0';
    return count;
}

extern "C" int pvk_snprintf(char* buffer, std::size_t size, const char* format, ...) {
    va_list arguments;
    va_start(arguments, format);
    const int count = pvk_vsnprintf(buffer, size, format, arguments);
    va_end(arguments);
    return count;
}
