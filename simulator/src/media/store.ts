/**
 * The media server's memory: encrypted files by id, as uploaded (the
 * simulator never sees a media key; phones decrypt with the key from the
 * message). Ids are derived from the encrypted file's SHA-256 (the upload
 * token), so the same upload twice is one file.
 */
import { sha256 } from '../crypto';

export interface StoredMedia {
  id: string;
  mmsType: string;
  encrypted: Buffer;
  uploadedAt: Date;
}

export class MediaStore {
  private readonly files = new Map<string, StoredMedia>();

  put(mmsType: string, encrypted: Buffer): StoredMedia {
    const id = sha256(encrypted).toString('hex');
    const existing = this.files.get(id);
    if (existing) return existing;
    const file = { id, mmsType, encrypted, uploadedAt: new Date() };
    this.files.set(id, file);
    return file;
  }

  get(id: string): StoredMedia | undefined {
    return this.files.get(id);
  }

  /** The file a media URL or direct path names (`…/m/<id>.enc…`). */
  byPath(pathOrUrl: string | null | undefined): StoredMedia | undefined {
    const m = /\/m\/([0-9a-f]{64})\.enc/.exec(pathOrUrl ?? '');
    return m ? this.files.get(m[1]!) : undefined;
  }

  get size(): number {
    return this.files.size;
  }
}

/** The direct path of a stored file (whatsmeow appends `&hash=…`, so it carries a query already). */
export const directPath = (id: string): string => `/m/${id}.enc?sim=1`;
