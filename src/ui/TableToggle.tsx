import { useId, useState, type ReactNode } from 'react';

/** A chart's text alternative: the same data as a table, one button away (screen readers, copying numbers). */
export function TableToggle({ what, children }: { what: string; children: ReactNode }) {
  const [open, setOpen] = useState(false);
  const id = useId();
  return (
    <div className="table-toggle">
      <button type="button" className="small" aria-expanded={open} aria-controls={id} onClick={() => setOpen(!open)}>
        {open ? `Hide the table of ${what}` : `Show ${what} as a table`}
      </button>
      <div id={id} hidden={!open}>
        {open && children}
      </div>
    </div>
  );
}
