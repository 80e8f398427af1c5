// A C face for OpenJPH's C++ encoder (Debian libopenjph0.9), so that .NET can call it through P/Invoke: OpenJPH
// reports errors by throwing C++ exceptions, which must never unwind into managed frames. Every entry point here
// catches everything and returns the reason as text. Built by AkkaVna.Codecs.csproj when libopenjph-dev and g++
// are installed; nothing else of AkkaVna is native.
#include <openjph/ojph_arch.h>
#include <openjph/ojph_file.h>
#include <openjph/ojph_mem.h>
#include <openjph/ojph_params.h>
#include <openjph/ojph_codestream.h>
#include <openjph/ojph_message.h>
#include <openjph/ojph_version.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace
{
    // OpenJPH's default error handler prints to stderr and throws; this one keeps the message in the exception.
    class throwing_error : public ojph::message_error
    {
    public:
        void operator()(int code, const char *file, int line, const char *fmt, ...) override
        {
            char text[512];
            va_list args;
            va_start(args, fmt);
            vsnprintf(text, sizeof text, fmt, args);
            va_end(args);
            (void)file;
            (void)line;
            throw std::runtime_error(std::string(text) + " (OpenJPH error " + std::to_string(code) + ")");
        }
    };

    class quiet_warning : public ojph::message_warning
    {
    public:
        void operator()(int, const char *, int, const char *, ...) override {}
    };

    class quiet_info : public ojph::message_info
    {
    public:
        void operator()(int, const char *, int, const char *, ...) override {}
    };

    throwing_error errors;
    quiet_warning warnings;
    quiet_info infos;

    struct configure
    {
        configure()
        {
            ojph::configure_error(&errors);
            ojph::configure_warning(&warnings);
            ojph::configure_info(&infos);
        }
    } configured;

    void reason(char *error, size_t error_size, const char *text)
    {
        if (error == nullptr || error_size == 0) return;
        snprintf(error, error_size, "%s", text);
    }
}

extern "C"
{
    // The version of the OpenJPH headers this was built against, e.g. "0.9.0".
    const char *akv_ojph_version()
    {
        static char version[32];
        snprintf(version, sizeof version, "%d.%d.%d", OPENJPH_VERSION_MAJOR, OPENJPH_VERSION_MINOR, OPENJPH_VERSION_PATCH);
        return version;
    }

    // Encodes one frame, reversible (lossless), no colour transform, as a bare HTJ2K codestream (PS3.5 A.4.11).
    // samples: components planes of height rows of width samples each (plane c, row y at samples[(c * height + y) * width]).
    // On success returns 0 and *out (free with akv_ojph_free) holds *out_size bytes; otherwise returns -1 and the reason.
    int akv_ojph_encode(const int32_t *samples, uint32_t width, uint32_t height, uint32_t components, uint32_t bit_depth,
                        int is_signed, uint32_t decompositions, uint8_t **out, size_t *out_size, char *error, size_t error_size)
    {
        if (out == nullptr || out_size == nullptr || samples == nullptr)
        {
            reason(error, error_size, "null argument");
            return -1;
        }
        *out = nullptr;
        *out_size = 0;
        if (width == 0 || height == 0 || components == 0 || components > 4 || bit_depth == 0 || bit_depth > 16 || decompositions > 32)
        {
            reason(error, error_size, "geometry out of range");
            return -1;
        }
        try
        {
            ojph::codestream stream;
            ojph::param_siz siz = stream.access_siz();
            siz.set_image_extent(ojph::point(width, height));
            siz.set_num_components(components);
            for (uint32_t c = 0; c < components; c++)
                siz.set_component(c, ojph::point(1, 1), bit_depth, is_signed != 0);
            siz.set_image_offset(ojph::point(0, 0));
            siz.set_tile_size(ojph::size(width, height));
            siz.set_tile_offset(ojph::point(0, 0));
            ojph::param_cod cod = stream.access_cod();
            cod.set_num_decomposition(decompositions);
            cod.set_block_dims(64, 64);
            cod.set_color_transform(false);
            cod.set_reversible(true);
            stream.set_planar(false);

            ojph::mem_outfile file;
            file.open();
            stream.write_headers(&file);
            uint32_t next = 0;
            ojph::line_buf *line = stream.exchange(nullptr, next);
            for (uint32_t y = 0; y < height; y++)
                for (uint32_t c = 0; c < components; c++)
                {
                    if (line == nullptr || next != c || line->size < width)
                        throw std::runtime_error("OpenJPH asked for lines in an unexpected order");
                    const int32_t *row = samples + ((size_t)c * height + y) * width;
                    memcpy(line->i32, row, (size_t)width * sizeof(int32_t));
                    line = stream.exchange(line, next);
                }
            stream.flush();
            size_t size = (size_t)file.tell();
            uint8_t *copy = (uint8_t *)malloc(size == 0 ? 1 : size);
            if (copy == nullptr) throw std::runtime_error("out of memory");
            memcpy(copy, file.get_data(), size);
            stream.close();
            *out = copy;
            *out_size = size;
            return 0;
        }
        catch (const std::exception &e)
        {
            reason(error, error_size, e.what());
            return -1;
        }
        catch (...)
        {
            reason(error, error_size, "unknown OpenJPH failure");
            return -1;
        }
    }

    void akv_ojph_free(uint8_t *data) { free(data); }
}
