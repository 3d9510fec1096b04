/** The dashboard's entry point: mounts the app into index.html. */
import { render } from 'preact';
import { App } from './app';

render(<App />, document.getElementById('app')!);
