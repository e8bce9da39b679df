/**
 * The `ui` block: branding of the pages people see (consent, sign-in, errors). The logo file is read
 * here, while the configuration is validated, so a missing, oversized or non-image logo is a
 * configuration error at `ui.logoFile` (with its line) at start-up, not a broken image later.
 */
import { z } from 'zod';
import { readLogoFile } from '../../ui/logo.ts';

const DEFAULT_PRODUCT_NAME = 'MCP OAuth Gateway';

export const uiSchema = z
  .object({
    productName: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .max(80, 'must be at most 80 characters')
      .default(DEFAULT_PRODUCT_NAME)
      .describe('Name shown at the top of every page and in the window title.'),
    logoFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Logo shown beside the product name: a PNG, JPEG, GIF, WebP or SVG file of at most 64 KiB, read once at start-up and embedded in the pages, which load nothing from elsewhere. Relative paths are relative to the working directory.',
      ),
    accentColor: z
      .string()
      .regex(/^#[0-9a-fA-F]{6}$/, 'must be a hex colour such as #1d4ed8')
      .optional()
      .describe(
        'Colour of the main buttons, as `#rrggbb`; the button text is black or white, whichever contrasts more. Default: blue (light blue in dark mode).',
      ),
  })
  .transform((ui, ctx) => {
    if (ui.logoFile === undefined) return { ...ui, logoDataUri: undefined };
    const logo = readLogoFile(ui.logoFile);
    if ('problem' in logo) {
      ctx.addIssue({ code: 'custom', path: ['logoFile'], message: logo.problem });
      return z.NEVER;
    }
    return { ...ui, logoDataUri: logo.dataUri };
  })
  .default({ productName: DEFAULT_PRODUCT_NAME, logoDataUri: undefined })
  .describe('Branding of the pages people see.');
