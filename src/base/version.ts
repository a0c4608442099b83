// limen's version, shown by `limen --version` and `limen status`.
export const VERSION = '0.1.0';
