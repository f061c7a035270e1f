import type { JSHandle, Page } from '@playwright/test';

/** Drops `dataTransfer` (a DataTransfer made in the page) on the studio's drop zone with the events a real drag-and-drop fires. */
export async function dropOnStudio(page: Page, dataTransfer: JSHandle<DataTransfer>): Promise<void> {
  const zone = page.getByTestId('dropzone');
  await zone.dispatchEvent('dragenter', { dataTransfer });
  await zone.dispatchEvent('dragover', { dataTransfer });
  await zone.dispatchEvent('drop', { dataTransfer });
}
