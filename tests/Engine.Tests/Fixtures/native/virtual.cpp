// Engine test fixture: a C++ virtual call (call *OFFSET(%reg) -> thunk under retpoline).
#include <cstdio>

struct Shape {
    virtual ~Shape() = default;
    virtual long area() const = 0;
};
struct Square : Shape {
    long s;
    explicit Square(long v) : s(v) {}
    long area() const override { return s * s; }
};
struct Rect : Shape {
    long w, h;
    Rect(long a, long b) : w(a), h(b) {}
    long area() const override { return w * h; }
};

__attribute__((noinline)) long total(Shape *const *shapes, int n)
{
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += shapes[i]->area();
    return sum;
}

int main(int argc, char **)
{
    Square a(argc + 2);
    Rect b(argc + 3, 4);
    Shape *shapes[] = { &a, &b, &a };
    std::printf("virtual %ld\n", total(shapes, 3));
    return 0;
}
