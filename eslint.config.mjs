// Lint and format (flat config). `npm run lint` checks, `npm run lint:fix` rewrites.
// Formatting is dprint's, through `@effect/dprint`, with the settings of the Effect repository's
// own eslint config. The rules are syntactic only (no type information), so the whole lint stays
// fast: no `parserOptions.project`, no type-aware rule.
import * as effectEslint from "@effect/eslint-plugin"
import js from "@eslint/js"
import { defineConfig } from "eslint/config"
import globals from "globals"
import tseslint from "typescript-eslint"

export default defineConfig(
  {
    ignores: ["**/dist/**", "**/node_modules/**", "docs/api/**", "bench/results/**", "coverage/**"]
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  effectEslint.configs.dprint,
  {
    files: ["**/*.ts", "**/*.mjs"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.node, ...globals.browser }
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // Effect code: generators that do not yield, `{}` in types and `any` in generic bounds are
      // idiomatic; TypeScript reports what these would (undefined names, fallthrough).
      "require-yield": "off",
      "no-undef": "off",
      "no-fallthrough": "off",
      "no-irregular-whitespace": "off",
      "object-shorthand": "error",
      "no-unused-vars": "off",
      "@typescript-eslint/no-unused-vars": ["error", {
        argsIgnorePattern: "^_",
        varsIgnorePattern: "^_",
        caughtErrorsIgnorePattern: "^_",
        destructuredArrayIgnorePattern: "^_"
      }],
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-empty-object-type": "off",
      "@typescript-eslint/no-unsafe-function-type": "off",
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-namespace": "off",
      "@typescript-eslint/ban-ts-comment": "off",
      "@typescript-eslint/consistent-type-imports": ["error", {
        fixStyle: "separate-type-imports",
        disallowTypeAnnotations: false
      }],
      "@typescript-eslint/array-type": ["error", { default: "generic", readonly: "generic" }],
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }]
    }
  },
  {
    // The library never prints: it logs through Effect's logger (see docs/guide.md, Logs).
    files: ["src/**/*.ts"],
    rules: { "no-console": "error" }
  },
  {
    // Percent-encodes control characters out of URLs on purpose.
    files: ["src/internal/redactUrl.ts"],
    rules: { "no-control-regex": "off" }
  }
)
