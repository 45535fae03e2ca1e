// Monotonic microseconds (fractional; messages carry them rounded: servers pay more to re-print a real),
// comparable across the generator's threads (CLOCK_MONOTONIC).
'use strict';
function nowUs() { const t = process.hrtime(); return t[0] * 1e6 + t[1] / 1e3; }
// Delivery key = publisher * SEQ_SPAN + seq: both stay far below 2^53.
const SEQ_SPAN = 1 << 20;
module.exports = { nowUs, SEQ_SPAN };
