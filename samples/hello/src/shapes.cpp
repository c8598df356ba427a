// A virtual call through a vtable: another indirect call the compiler routes through a thunk.
#include <memory>
#include <vector>
#include "shapes.h"

namespace {
struct Shape { virtual ~Shape() = default; virtual long area() const = 0; };
struct Rect final : Shape { long w, h; Rect(long w, long h) : w(w), h(h) {} long area() const override { return w * h; } };
struct Square final : Shape { long s; explicit Square(long s) : s(s) {} long area() const override { return s * s; } };
}

extern "C" long total_area(void)
{
    std::vector<std::unique_ptr<Shape>> shapes;
    shapes.push_back(std::make_unique<Rect>(3, 4));
    shapes.push_back(std::make_unique<Square>(5));
    long sum = 0;
    for (const auto& s : shapes) sum += s->area();
    return sum;
}
