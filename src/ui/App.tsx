import { useEffect, useState } from 'react';
import { DropZone } from './DropZone';
import { ProjectPanel } from './ProjectPanel';
import { PreprocessPanel } from './PreprocessPanel';
import { ModelView } from './ModelView';
import { PlanPanel } from './PlanPanel';
import { RunPanel } from './RunPanel';
import { ResultsPanel } from './ResultsPanel';
import { MixedPrecisionPanel } from './MixedPrecisionPanel';
import { RunsTable } from './RunsTable';
import { useStudio } from '../state/store';

type Theme = 'light' | 'dark';

function initialTheme(): Theme {
  const saved = localStorage.getItem('lowbit-theme');
  if (saved === 'light' || saved === 'dark') return saved;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function App() {
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const restore = useStudio((s) => s.restore);
  useEffect(() => void restore(), [restore]);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem('lowbit-theme', theme);
  }, [theme]);
  return (
    <>
      <header className="topbar">
        <h1>
          Lowbit <span>Studio</span>
        </h1>
        <p className="tagline">Post-training quantization of ONNX models, in your browser</p>
        <button type="button" className="ghost" onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')} aria-label={`Switch to ${theme === 'dark' ? 'light' : 'dark'} theme`}>
          {theme === 'dark' ? '☀' : '☾'}
        </button>
      </header>
      <main className="grid">
        <DropZone />
        <ProjectPanel />
        <PreprocessPanel />
        <PlanPanel />
        <RunPanel dark={theme === 'dark'} />
        <ResultsPanel dark={theme === 'dark'} />
        <MixedPrecisionPanel dark={theme === 'dark'} />
        <RunsTable />
        <ModelView />
      </main>
    </>
  );
}
