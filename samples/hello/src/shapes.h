#ifndef SHAPES_H
#define SHAPES_H
#ifdef __cplusplus
extern "C" {
#endif
long total_area(void);
#ifdef __cplusplus
}
#endif
#endif
